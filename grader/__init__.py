"""Trusted, host-side half of the diffusion-speedup grader.

Everything under this package runs in the grader's own process and never imports
agent-written code; that code only ever runs in a worker started through a sandbox.
"""

__version__ = "0.1.0"
