"""Every node class the pack registers with ComfyUI, in menu and README order."""
from __future__ import annotations

from . import flux2_nodes, kontext_nodes, result_by_request_id

NODE_CLASS_MAPPINGS: dict[str, type] = {**kontext_nodes.NODE_CLASS_MAPPINGS,
                                        **flux2_nodes.NODE_CLASS_MAPPINGS,
                                        **result_by_request_id.NODE_CLASS_MAPPINGS}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {**kontext_nodes.NODE_DISPLAY_NAME_MAPPINGS,
                                              **flux2_nodes.NODE_DISPLAY_NAME_MAPPINGS,
                                              **result_by_request_id.NODE_DISPLAY_NAME_MAPPINGS}
