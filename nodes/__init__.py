"""ComfyUI glue: node classes, tensor conversion, progress/interrupt bridge."""
from .registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .left_jobs import collect_left_jobs_on_load
from .price_route import register_price_route
from .sample_inputs import install_sample_inputs_into_comfyui

collect_left_jobs_on_load()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

# Inside ComfyUI only (both are no-ops elsewhere): the price badge's route, the samples.
register_price_route()
install_sample_inputs_into_comfyui()
