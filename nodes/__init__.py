"""ComfyUI glue: node classes, tensor conversion, progress/interrupt bridge."""
from .kontext_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
