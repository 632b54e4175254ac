"""``rain pilot``: the go/no-go report of a RAIN pilot on a company's own prompts, policy
and latency limit (greedy, best-of-N and RAIN side by side, one HTML page and a JSON
file). Nothing is imported here: ``rainlm.pilot.run`` runs a pilot, ``rainlm.pilot.page``
renders its page."""
