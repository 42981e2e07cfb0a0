"""The one table of the Kontext nodes' parameters: each is declared once, here.

The node inputs (`nodes/node_inputs.py`), the CLI options (`cli/main.py`), the local checks, fal's
JSON body (`EditRequest.arguments`), the result-cache key and the README's node reference are all
derived from `PARAMETERS`. Adding a fal field means adding one entry (and its test).

The order is the order of the node's widgets, which saved workflows depend on (widgets_values
is positional): append new entries, never reorder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import models as m
from .errors import InvalidInputError

TEXT, INT, FLOAT, BOOL, CHOICE = "text", "int", "float", "bool", "choice"
_NOTHING = object()


@dataclass(frozen=True)
class Parameter:
    """One input: its type and range, its default and tooltip, and how it reaches fal."""

    name: str
    kind: str  # TEXT, INT, FLOAT, BOOL or CHOICE
    default: Any
    tooltip: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    sent_to_fal: bool = True  # a field of fal's body (and so of the result-cache key)
    omit_when: Any = _NOTHING  # this value means "leave it to fal": the field is not sent
    cli_flag: str | None = ""  # "" = derived from the name; None = not offered by the CLI
    cli_default: Any = _NOTHING  # the CLI's default, when it differs from the node's
    optional: bool = False  # None is allowed and means "not sent" (fal picks, e.g. a random seed)
    comfy_type: str | None = None  # the widget type, when it differs from `kind` (INT for FLOAT)
    widget: dict[str, Any] = field(default_factory=dict)  # extra ComfyUI widget options
    tiers: tuple[str, ...] = ()  # the model tiers whose endpoint has this field; () = every one

    def applies_to(self, tier: str) -> bool:
        """Whether the endpoint of model `tier` has this field (only then is it checked and sent)."""
        return not self.tiers or tier in self.tiers

    def check(self, value: Any) -> Any:
        """The value in the type fal (or the pack) expects, or InvalidInputError naming it.
        The one place a parameter is validated and converted."""
        if value is None and self.optional:
            return None
        if self.kind == TEXT:
            return _check_text(self, value)
        if self.kind == BOOL:
            if not isinstance(value, bool):
                raise InvalidInputError(self.name, "must be true or false")
            return value
        if self.kind == CHOICE:
            text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else value
            if text not in self.choices:
                raise InvalidInputError(self.name, f"must be one of {', '.join(self.choices)}; "
                                                   f"got {value!r}")
            return text
        if self.kind == INT:
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not self.low <= value <= self.high:
                raise InvalidInputError(self.name, f"must be a whole number from {self.low:g} to "
                                                   f"{self.high:g}, got {value!r}")
            return int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not self.low <= value <= self.high:
            raise InvalidInputError(self.name, f"must be a number from {self.low:g} to "
                                               f"{self.high:g}, got {value!r}")
        return float(value)

    @property
    def flag(self) -> str | None:
        if self.cli_flag is None:
            return None
        return self.cli_flag or "--" + self.name.replace("_", "-")

    @property
    def command_line_default(self) -> Any:
        return self.default if self.cli_default is _NOTHING else self.cli_default

    def omitted(self, value: Any) -> bool:
        """Whether fal's body leaves this field out for `value` (fal then decides)."""
        return value is None or (self.omit_when is not _NOTHING and value == self.omit_when)


def _check_text(parameter: Parameter, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(parameter.name, "is empty; describe the edit, e.g. 'put the hat "
                                                "from image 2 on the person in image 1'")
    if len(value) > parameter.high:
        raise InvalidInputError(parameter.name, f"is {len(value):,} characters; the limit is "
                                                f"{int(parameter.high):,}")
    return value


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("prompt", TEXT, "", "The edit instruction. Refer to references by order, e.g. 'put "
              "the duckling from image 2 on the t-shirt in image 1'.", high=m.PROMPT_MAX_CHARS,
              cli_flag="--prompt", widget={"multiline": True}),
    Parameter("model", CHOICE, m.MODEL_TIERS[0],
              "pro: FLUX.1 Kontext [pro], $%.2f per image. max: Kontext [max], higher quality and "
              "prompt adherence, $%.2f per image." % (m.MULTI_MODELS["pro"].usd_per_image,
                                                       m.MULTI_MODELS["max"].usd_per_image),
              choices=m.MODEL_TIERS, sent_to_fal=False),
    Parameter("seed", INT, 0, "Sent to fal so a run can be reproduced. Set 'control after "
              "generate' to fixed to re-use the last result for free; any change runs (and "
              "bills) again.", low=m.SEED_MIN, high=m.SEED_MAX, cli_default=None, optional=True,
              widget={"control_after_generate": True}),
    Parameter("guidance_scale", FLOAT, m.GUIDANCE_DEFAULT, "How closely the result follows the "
              "prompt (CFG). Higher is more literal.", low=m.GUIDANCE_MIN, high=m.GUIDANCE_MAX,
              step=m.GUIDANCE_STEP, cli_flag="--guidance", widget={"round": 0.01}),
    Parameter("num_images", INT, m.NUM_IMAGES_DEFAULT, "Variants to generate; each one is billed.",
              low=m.NUM_IMAGES_MIN, high=m.NUM_IMAGES_MAX),
    Parameter("aspect_ratio", CHOICE, m.ASPECT_RATIO_AUTO, "Shape of the result. auto lets the "
              "model decide (usually the first reference's shape).",
              choices=(m.ASPECT_RATIO_AUTO, *m.ASPECT_RATIOS), omit_when=m.ASPECT_RATIO_AUTO),
    Parameter("output_format", CHOICE, m.OUTPUT_FORMAT_DEFAULT, "Format fal encodes results in: "
              "jpeg is smaller, png is lossless.", choices=m.OUTPUT_FORMATS),
    Parameter("safety_tolerance", CHOICE, m.SAFETY_TOLERANCE_DEFAULT, "fal's moderation level: 1 "
              "is strictest, 6 most permissive.", choices=m.SAFETY_TOLERANCES),
    Parameter("enhance_prompt", BOOL, False, "Let fal rewrite the prompt for better results (the "
              "prompt it used is in the info output)."),
    Parameter("sync_mode", BOOL, False, "Return results inline as data URIs; fal then keeps no "
              "copy in its request history."),
    Parameter("reference_transport", CHOICE, m.REFERENCE_TRANSPORTS[0], "upload: send references "
              "to fal storage once per process and pass URLs (fast re-runs). data_uri: inline them "
              "in the request, nothing stored.", choices=m.REFERENCE_TRANSPORTS,
              sent_to_fal=False, cli_flag="--transport"),
    Parameter("max_reference_megapixels", FLOAT, m.DEFAULT_MAX_REFERENCE_MEGAPIXELS,
              "Downscale references larger than this before sending (0 = never). Kontext works at "
              "about 1 MP: BFL documents a fixed ~1 MP output and its training sizes run from "
              "1024x1024 to 1568x672 (at most 1.05 MP), so "
              f"{m.DEFAULT_MAX_REFERENCE_MEGAPIXELS:g} loses nothing the model uses and more only "
              "costs upload time.", low=0.0, high=m.MAX_REFERENCE_MEGAPIXELS_LIMIT, step=0.1,
              sent_to_fal=False, widget={"round": 0.01}),
    Parameter("timeout_seconds", FLOAT, int(m.DEFAULT_TIMEOUT_SECONDS), "Give up after this long "
              "(upload, queue, generation and download); the job is then cancelled at fal, and "
              "a result it still delivers is kept in the result cache.",
              low=m.TIMEOUT_MIN_SECONDS, high=m.TIMEOUT_MAX_SECONDS, sent_to_fal=False,
              cli_flag="--timeout", comfy_type="INT"),
    Parameter("nsfw_policy", CHOICE, m.NSFW_POLICIES[0], "What to do with images fal's safety "
              "checker flags (they come back blank): drop them (error if none remain), error, or "
              "keep them.", choices=m.NSFW_POLICIES, sent_to_fal=False),
    Parameter("use_result_cache", BOOL, True, "Re-use a stored result for exactly the same "
              "inputs and seed, even after a restart, instead of paying again.", sent_to_fal=False,
              cli_flag=None),
    Parameter("reference_encoding", CHOICE, m.REFERENCE_ENCODING_DEFAULT, "auto: photos go as "
              "high-quality JPEG (full colour resolution, PSNR >= %g dB however noisy the photo; "
              "an eighth to two fifths of a PNG's bytes, so a first run uploads 2-7x faster), "
              "graphics, text and images with alpha as lossless PNG. lossless: every reference as "
              "PNG, bit-exact, for when the exact pixels matter more than upload time."
              % m.REFERENCE_MIN_PSNR_DB,
              choices=m.REFERENCE_ENCODINGS, sent_to_fal=False),
)
MODEL = "model"  # picks the endpoint (and the price); every other entry is a field or an option


class ParameterTable:
    """A node's parameters in widget order, with the lookups every surface derives from them.

    `by_name` is looked up at call time, so a test may swap an entry (monkeypatch.setitem)."""

    def __init__(self, parameters: tuple[Parameter, ...]) -> None:
        self.parameters = parameters
        self.by_name: dict[str, Parameter] = {p.name: p for p in parameters}
        self.fal_fields: tuple[str, ...] = tuple(p.name for p in parameters if p.sent_to_fal)
        self.pack_options: tuple[str, ...] = tuple(p.name for p in parameters
                                                   if not p.sent_to_fal and p.name != MODEL)

    def check(self, name: str, value: Any) -> Any:
        """`value` checked and converted by the entry `name`."""
        return self.by_name[name].check(value)

    def check_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """The pack's own options (transport, timeout, ...) checked; missing ones get defaults."""
        return {name: self.check(name, values.get(name, self.by_name[name].default))
                for name in self.pack_options}

    def defaults(self) -> dict[str, Any]:
        """Every entry's default value, by name (what an untouched node sends)."""
        return {parameter.name: parameter.default for parameter in self.parameters}


TABLE = ParameterTable(PARAMETERS)
BY_NAME: dict[str, Parameter] = TABLE.by_name
FAL_FIELDS: tuple[str, ...] = TABLE.fal_fields
PACK_OPTIONS: tuple[str, ...] = TABLE.pack_options
check = TABLE.check
check_options = TABLE.check_options
defaults = TABLE.defaults
