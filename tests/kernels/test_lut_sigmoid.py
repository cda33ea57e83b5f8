"""The int8 LOGISTIC tables: TFLite's LUTPopulate evaluates the logistic in fp32, XNNPACK in double.
The planted code is a long-run differential seed (600191): in fp32 the logistic of -0.03906768 is
0.49023438, exactly 125.5 / 256; in double it is 0.49023432."""
import numpy as np

from qsim.kernels.elementwise import tflite_lut

S_IN, ZP_IN, S_OUT, ZP_OUT = np.float32(0.000300520594464615), 31, np.float32(1 / 256), -128


def test_fp32_logistic_rounds_the_tie_away_from_zero():
    assert tflite_lut("sigmoid", S_IN, ZP_IN, S_OUT, ZP_OUT)[-99 + 128] == 126 - 128


def test_xnnpack_logistic_in_double_is_below_the_tie():
    assert tflite_lut("sigmoid_f64", S_IN, ZP_IN, S_OUT, ZP_OUT)[-99 + 128] == 125 - 128
