"""Gates a release passes through after its deploy, one module per kind.

A gate kind owns its spec section (in models.py), its pure start / next step / verdict, the action it
asks the shell for and how it reads that action's result. Its status is one `GateStatus` in
`status.gates[]`, the same shape for every kind. The machine calls a gate through these functions and
nothing else, so adding a kind is its module here, its action and adapter, and its phase in the table
(core/phases.py).
"""
