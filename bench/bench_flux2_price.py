"""F1: what the pack's default reference downscale saves on a FLUX.2 run.

FLUX.2 bills every megapixel of the references as well as the output, so a phone photo sent
as it is costs more than the edit. Two 12 MP photos (4000x3000) with `image_size = auto`, priced
by the pack's own rule and downscale (kontext/flux2_models.py, kontext/reference_encoding.py)
beside the same run with the references sent unscaled. Pure arithmetic on sizes: the stand-in
bills by the same rule (tests/nodes/test_flux2_node.py checks that the two agree).
"""
from __future__ import annotations

from fal_kontext.kontext import flux2_models as f
from fal_kontext.kontext.reference_encoding import downscaled_size

from . import harness as h

PHOTO = (4000, 3000)  # a 12 MP phone or camera photo
PHOTOS = 2


def _dollars(usd: float) -> str:
    text = f"{usd:.3f}"
    return "$" + (text[:-1] if text.endswith("0") else text)  # $0.375, $0.06, $1.20


def prices() -> dict[str, dict[str, float | int]]:
    """Per model: billed megapixels and USD, references unscaled and as the pack sends them."""
    unscaled = [PHOTO] * PHOTOS
    sent = [downscaled_size(*PHOTO, f.DEFAULT_MAX_REFERENCE_MEGAPIXELS)] * PHOTOS
    figures = {}
    for tier, model in f.FLUX2_MODELS.items():
        # auto: the first reference's shape at about 1 MP, the same for both (same aspect)
        before = f.billed_megapixels(f.auto_output_size(unscaled[0]), unscaled)
        after = f.billed_megapixels(f.auto_output_size(sent[0]), sent)
        figures[tier] = {"unscaled_mp": before, "unscaled_usd": f.price_usd(model, before),
                         "sent_mp": after, "sent_usd": f.price_usd(model, after),
                         "saved_usd": round(f.price_usd(model, before) - f.price_usd(model, after), 4)}
    return figures


def run(standin: h.StandIn, mode: h.Mode) -> h.BenchResult:
    figures = prices()
    sent = downscaled_size(*PHOTO, f.DEFAULT_MAX_REFERENCE_MEGAPIXELS)
    result = h.BenchResult("flux2_price")
    pro, max_ = figures["pro"], figures["max"]
    met = all(row["saved_usd"] > 0 for row in figures.values()) \
        and sent[0] * sent[1] <= f.BILLING_MEGAPIXEL_PIXELS
    result.targets.append(h.Target(
        "F1", f"dollars saved per FLUX.2 run by the default reference downscale "
              f"(max_reference_megapixels {f.DEFAULT_MAX_REFERENCE_MEGAPIXELS:g}): two 12 MP "
              "photo references, image_size auto, [pro] / [max]",
        f"{_dollars(pro['saved_usd'])} [pro] ({_dollars(pro['unscaled_usd'])} -> "
        f"{_dollars(pro['sent_usd'])}), {_dollars(max_['saved_usd'])} [max] "
        f"({_dollars(max_['unscaled_usd'])} -> {_dollars(max_['sent_usd'])})",
        "every reference billed as at most 1 MP", met))
    rows = [[model.label, f"{row['unscaled_mp']} MP, {_dollars(row['unscaled_usd'])}",
             f"{row['sent_mp']} MP, {_dollars(row['sent_usd'])}", _dollars(row["saved_usd"]),
             f"{row['saved_usd'] / row['unscaled_usd']:.0%}"]
            for model, row in ((f.FLUX2_MODELS[tier], row) for tier, row in figures.items())]
    result.tables.append(
        f"**FLUX.2 price of one edit with two {PHOTO[0]}x{PHOTO[1]} photo references** "
        f"(image_size auto, estimated {'x'.join(map(str, f.auto_output_size(sent)))}; "
        f"references sent at {sent[0]}x{sent[1]} by default; 1 billed MP = 1024x1024 pixels)\n\n"
        + h.markdown_table(["model", "references unscaled", "as the pack sends them", "saved",
                            "share"], rows))
    result.numbers = {"photo": list(PHOTO), "sent": list(sent), "prices": figures}
    return result
