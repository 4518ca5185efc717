"""Code generated from proto/ by scripts/protos.sh: do not edit."""
