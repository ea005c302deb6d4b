"""metarl: meta-reinforcement learning in the MAML family, batched over tasks and episodes."""

__version__ = "0.1.0"
