"""The instance metadata service each container sees at 169.254.169.254.

One listening socket per task, made inside the task's own network namespace (netns.py):
whoever connects to it is that task, so the proxy knows its caller without trusting an
address, and no other task nor the host can reach it. The answers (service.py) are the
task's own: its id as the instance id, its address, the host's zone, and credentials of
the job's IAM role from STS (credentials.py), behind IMDSv2 tokens (tokens.py).
"""
