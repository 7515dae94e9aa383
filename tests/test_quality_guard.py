"""The quality guard's measures (benchmarks/quality_guard.py): PSNR and SSIM behave as published."""

import numpy as np

from benchmarks.quality_guard import psnr, ssim


def test_psnr_of_a_one_level_offset_and_of_identical_pictures() -> None:
    picture = np.random.default_rng(0).integers(1, 255, (64, 64, 3), dtype=np.uint8)
    assert psnr(picture, picture) == float("inf")
    assert abs(psnr(picture, picture + 1) - 20 * np.log10(255)) < 1e-9  # 48.13 dB


def test_ssim_is_one_for_the_same_picture_and_falls_with_the_noise() -> None:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:96, 0:96]
    picture = np.stack([x * 2, y * 2, (x + y)], axis=-1).astype(np.uint8)
    noisy = [np.clip(picture + rng.normal(0, sigma, picture.shape), 0, 255).astype(np.uint8) for sigma in (2, 8, 32)]
    scores = [ssim(picture, other) for other in noisy]
    assert ssim(picture, picture) == 1.0
    assert 1.0 > scores[0] > scores[1] > scores[2] > 0
    # A change of brightness alone keeps the structure: SSIM stays far above the noisiest copy's.
    assert ssim(picture, np.clip(picture.astype(int) + 10, 0, 255).astype(np.uint8)) > scores[2]
