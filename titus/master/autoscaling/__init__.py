"""Scaling policies carried out by the leader: one protocol (executor.py), two executors
(local.py evaluates policies on their metrics; aws.py hands them to Application Auto
Scaling and CloudWatch), a worker thread (worker.py) and how a decided size is written
(apply.py)."""
