"""`kubectl sbr`: the runs of a cluster as a person wants to see them, and the levers on them.

    kubectl sbr get RUN [-w]           the run, its Deployment, ReplicaSets and pods as a tree
    kubectl sbr list [-A] [--deployment D]
    kubectl sbr history DEPLOYMENT     revisions beside the runs that made or restored them
    kubectl sbr plan -f run.yaml       what a run would do, without doing it (the operator's own core)
    kubectl sbr abort RUN | retry RUN
    kubectl sbr status RUN --timeout 10m   for CI: exit 0 only when the run succeeded
"""
