"""What the tests and the benchmarks share, in one place, importable without pytest:

- waiting.py: poll (until true, or None), wait_for (or fail saying what was seen), holds (must stay true);
- kube.py: kubectl against the session's cluster (or a given kubeconfig), kubectl_as, a ServiceAccount's
  token and a kubeconfig that uses it, waiting for CRDs to be served;
- operator_process.py: the operator as a real subprocess (OperatorProcess), its CPU and memory from /proc;
- servers.py: a server process up once its readiness URL answers (Prometheus, the registry, Gitea);
- gitops.py: Argo CD's health and actions scripts and kstatus, evaluated as those tools do.

Free ports come from tools/localcluster.py (free_port), which also starts the control planes. The fake git
servers and forges are in gitserver/. The benchmarks put the repository root on sys.path and import
`tests.support.…` like the tests do.
"""
