"""Gates a release passes through after its deploy, one module per kind.

A gate kind is one object in one module here (http.py, analysis.py, restarts.py), of the protocol in
protocol.py: its phase and failure class, whether the run asks for it, and its pure enter / step /
settle. sequence.py registers the kinds in the order they judge. The machine drives every gate the
same way (machine._gating and _judge), so adding a kind is its module and its line in the sequence;
a kind that needs a new side effect adds its action (actions.py) and adapter, one that needs a phase
of its own adds it to the phase table (models.PHASES). approval.py is the approval before the deploy
and before success, which the machine asks at those two points.
"""

from .protocol import Act, Fail, Gate, Hold, Pass, Step, closed, entry, set_gate
from .sequence import SEQUENCE, after, enabled, first, of_phase, owner

__all__ = ["SEQUENCE", "Act", "Fail", "Gate", "Hold", "Pass", "Step", "after", "closed", "enabled", "entry", "first",
           "of_phase", "owner", "set_gate"]
