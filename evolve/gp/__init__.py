"""The offline search: typed expression-tree GP over a problem's declared rules.

``GPBackend`` is an LLM backend (``--llm gp``, the default for problems with a
``[rule]`` table); ``BehaviourKeys`` tells the loop which children are
duplicates in behaviour; ``check_rules`` validates a problem's rule tables
against its seed.
"""

from evolve.gp.backend import GPBackend
from evolve.gp.rules import check_rules
from evolve.gp.semantics import BehaviourKeys

__all__ = ["BehaviourKeys", "GPBackend", "check_rules"]
