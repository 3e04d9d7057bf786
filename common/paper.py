"""Published numbers we compare against: one place, cited, never printed as ours."""

#: Luo et al., Table 1: similarity to the real HSC images on their 2,000-galaxy test set.
#: Superscript 1: Pix2WGAN from DECaLS; 2: Cascade Pix2WGAN from SDSS.
TABLE1_METRICS = ("rmse", "psnr", "ssim", "lpips", "fid")
TABLE1 = {
    "SDSS–HSC":        dict(rmse=34.81, psnr=17.59, ssim=0.43, lpips=0.19, fid=179.59),
    "Pseudo-HSC²–HSC": dict(rmse=21.69, psnr=23.19, ssim=0.71, lpips=0.11, fid=105.16),
    "DECaLS–HSC":      dict(rmse=27.39, psnr=19.95, ssim=0.56, lpips=0.06, fid=78.91),
    "Pseudo-HSC¹–HSC": dict(rmse=20.04, psnr=24.21, ssim=0.72, lpips=0.09, fid=98.46),
}
#: Whether a larger value is better, per metric.
HIGHER_IS_BETTER = dict(rmse=False, psnr=True, ssim=True, lpips=False, fid=False)
#: Decimals each metric is printed with: the paper's Table 1 precision, which
#: experiments/table1.py uses for our cells, differences and verdict intervals too.
DIGITS = dict(rmse=2, psnr=2, ssim=2, lpips=2, fid=2)
#: The smallest difference between two rows that a verdict counts
#: (:func:`common.stats.paired_verdict`): one unit in the last printed decimal. A mean
#: difference smaller than this is "within noise", however narrow its interval.
MIN_DIFFERENCE = {m: 10.0 ** -d for m, d in DIGITS.items()}

#: Luo et al. §4.2-4.3: training times on one RTX 3090.
TRAIN_HOURS = {"pix2wgan": 7.3, "cascade": 13.2}
