"""The master: leader loop, reconciler, scheduler and cluster drivers."""
