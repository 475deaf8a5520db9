"""Workload kinds other than Deployments, one module each (statefulset.py, daemonset.py): their rollout
progress as `kubectl rollout status` judges it, from the object as plain data. Not wired into runs yet:
a run still targets a Deployment (the README's "Beyond Deployments" says what is missing)."""
