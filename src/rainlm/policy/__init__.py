"""Policies as data: a TOML file a non-programmer writes (``docs/policy.md``), parsed once
into a :class:`Policy` whose judge the CLI (``--policy-file``), the server and the
bench all take.

``load_policy(path)`` / ``policy_from_text(text)`` parse and validate a file (every
error a :class:`PolicyError` naming the file, line and key); ``Policy.evaluator()`` is
the search's judge, ``Policy.check(text)`` says which rules an answer breaks.
"""

from rainlm.errors import PolicyError
from rainlm.policy.file import load_policy, policy_from_text
from rainlm.policy.model import USES, FailSafe, Policy, PolicyCheck

__all__ = ["FailSafe", "Policy", "PolicyCheck", "PolicyError", "USES", "load_policy",
           "policy_from_text"]
