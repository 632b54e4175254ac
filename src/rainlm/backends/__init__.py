"""Model backends: small adapters that give the search next-token distributions.

Heavy imports (torch, transformers, llama_cpp) live only inside the backend modules
and happen when a backend is built, never when ``rainlm.backends`` is imported.
"""

from rainlm.backends.base import Backend, BackendCounters, Capabilities, TokenDistribution

__all__ = ["Backend", "BackendCounters", "Capabilities", "TokenDistribution"]
