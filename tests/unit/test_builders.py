"""Builtin models against published counts (sources in the builder modules)."""
import pytest

from qsim.ir.builders import build


def _within(value, published, tol):
    return abs(value - published) / published <= tol


@pytest.mark.parametrize("name,macs,params", [
    ("resnet50", 4.09e9, 25.557e6),     # torchvision: 4.09 GFLOPS(MACs), 25,557,032 params
    ("resnet18", 1.82e9, 11.690e6),     # torchvision: 1.81 GMACs, 11,689,512 params
    ("mobilenet_v2", 0.300e9, 3.505e6), # Sandler et al.: 300 M MACs; torchvision 3,504,872 params
])
def test_imagenet_models_match_published_counts(name, macs, params):
    s = build(name).summary()
    assert _within(s["macs"], macs, 0.02), s
    assert _within(s["params"], params, 0.02), s


def test_bert_base_counts():
    s = build("bert").summary()
    # HF bert-base-uncased: 109,482,240 parameters, of which the pooler (768*768 + 768) is not built
    assert s["params"] == 109_482_240 - (768 * 768 + 768)
    # 12 x (4*768^2 + 2*768*3072) * 128 + 12 * 2 * 12 * 128 * 128 * 64
    assert s["macs"] == 12 * (4 * 768 * 768 + 2 * 768 * 3072) * 128 + 12 * 2 * 12 * 128 * 128 * 64


def test_llama7b_parameters_and_decode_macs():
    g = build("llama", seq=1, context=1023)
    s = g.summary()
    # LLaMA-7B: 6,738,415,616 parameters (Touvron et al. 2023 config; HF count)
    assert s["params"] == 6_738_415_616
    per_layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 32 * 1024 * 128
    assert s["macs"] == 32 * per_layer + 4096 * 32000


def test_mlperf_tiny_counts():
    kws = build("mlperf_tiny_kws").summary()
    # NXP eIQ card: 23,756 params including 9 BNs x 64 x (scale, shift), folded away here
    assert kws["params"] == 23_756 - 9 * 64 * 2
    assert kws["macs"] == 25 * 5 * 64 * 40 + 4 * (25 * 5 * 64 * 9 + 25 * 5 * 64 * 64) + 64 * 12
    ad = build("mlperf_tiny_ad").summary()
    assert ad["macs"] == 640 * 128 + 3 * 128 * 128 + 128 * 8 + 8 * 128 + 3 * 128 * 128 + 128 * 640
    ic = build("mlperf_tiny_ic").summary()
    # stem 32*32*16*27 + stack1 2 x 32*32*16*144 + stack2 (16*16*32*(144+288) + 16*16*32*16)
    # + stack3 (8*8*64*(288+576) + 8*8*64*32) + fc 640
    assert ic["macs"] == (32 * 32 * 16 * 27 + 2 * 32 * 32 * 16 * 144 + 16 * 16 * 32 * (144 + 288 + 16)
                          + 8 * 8 * 64 * (288 + 576 + 32) + 64 * 10)
    # MobileNetV1-0.25 at 96x96 (Howard et al. Table 1 with alpha = 0.25): conv0 8ch at 48x48, then
    # (dw 3x3 + pw) layers with (out channels, output size) below, classifier 256 -> 2.
    layers = [(16, 48, 8), (32, 24, 16), (32, 24, 32), (64, 12, 32), (64, 12, 64), (128, 6, 64)] + \
        [(128, 6, 128)] * 5 + [(256, 3, 128), (256, 3, 256)]
    macs = 48 * 48 * 8 * 27 + sum(hw * hw * cin * 9 + hw * hw * cin * cout for cout, hw, cin in layers) + 256 * 2
    vww = build("mlperf_tiny_vww")
    assert vww.summary()["macs"] == macs
