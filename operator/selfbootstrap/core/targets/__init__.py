"""Workload kinds other than Deployments, one module each: their rollout progress as `kubectl rollout status`
judges it (statefulset.py, daemonset.py), and their releases and undo from ControllerRevisions
(controllerrevisions.py), all from the object as plain data."""
