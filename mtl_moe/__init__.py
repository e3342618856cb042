"""mtl-moe: co-design multi-task Mixture-of-Experts vision transformers and their FPGA accelerator."""

from mtl_moe.config import PRESETS, ConfigError, MoEViTConfig, TaskSpec, get_preset, load_config

__all__ = ["PRESETS", "ConfigError", "MoEViTConfig", "TaskSpec", "get_preset", "load_config"]
__version__ = "0.1.0"
