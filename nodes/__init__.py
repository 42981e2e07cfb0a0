"""ComfyUI glue: node classes, tensor conversion, progress/interrupt bridge."""
from .kontext_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .left_jobs import collect_left_jobs_on_load

collect_left_jobs_on_load()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
