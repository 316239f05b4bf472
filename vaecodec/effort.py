"""The encode effort: how much time ``compress`` spends choosing the latent for a smaller file.

Why: the analysis transform's latent is an amortised guess, trained to do well on average over
images, not the best latent of this image under the decoder. At an effort above the default, the
encoder searches for symbols that lower this image's own rate + lambda * distortion (the quality's
trade-off, the training loss), with the decoder fixed: the file is an ordinary file of the same
format, and any vaecodec with these weights decodes it. The search is stochastic Gumbel annealing
(SGA; Yang, Bamler & Mandt, NeurIPS 2020), in ``vaecodec.latent.sga``; this module is the scale
(torch-free, so that the command line's options cost no import).

The scale: effort 1 (the default) codes the analysis latent as it is, today's bytes; each higher
effort runs more optimisation steps, each one pass of the synthesis transform forward and back
(about one and a half plain encodes, alone on one or two threads), the gradient's pass wholly in
bf16 where the codec runs bf16 (its last layer too, which the decoder keeps in float32). Every
effort's schedule is the same apart from its length:
Adam at a learning rate of 0.02 on the gained residual the coder rounds, the temperature annealed
exponentially from 0.6 to 0.2, the rounded objective compared with the plain file's at the end.

How the schedule was chosen (shipped weights 8c0efb94, bf16 on the CPU, one thread; "loss" is the
rounded rate + lambda * distortion against the plain file's; about 25 short runs on two images,
which is all the CPU time allowed, so the choice is coarse):

- Clamping the synthesis output to [0, 1] in the objective, as the decoder does, mattered most:
  without it the objective counts errors of out-of-range pixels that the decoder clips anyway (its
  PSNR was 0.2 dB under the decoded file's, 36.15 against 36.35 dB on kodim23 at quality 60), and
  the optimised files lost PSNR (-0.09 dB after 20 steps, for 5.9 % fewer bytes); with it they
  gained (+0.26 dB after 60 steps, with 6.6 % fewer bytes).
- Temperature: hotter is better at these short runs. kodim23, quality 60, 20 steps at lr 0.02,
  without the clamp: 0.5 -> 0.05 gave -1.8 %, 0.2 -> 0.02 -0.3 %, 0.5 -> 0.25 -2.7 %, 0.8 -> 0.3
  -2.7 %. At 60 steps with the clamp: 0.5 -> 0.25 (lr 0.02) -6.5 %, 0.6 -> 0.2 (lr 0.03) -6.6 %,
  0.6 -> 0.1 (lr 0.02) -6.2 %.
- Learning rate: 0.05 raised the loss within ten steps in three of four runs (with 0.6 -> 0.2 and
  0.5 -> 0.05 on kodim23, with 1.0 -> 0.4 on kodim01; with 1.0 -> 0.4 on kodim23 it gained -2.1 %
  in 8 steps): Adam's first steps move every element by about the learning rate, and many cross a
  rounding boundary toward zero, so the rate falls and the distortion rises more. With the cold
  0.5 -> 0.05, lr 0.01 matched 0.02 at 20 steps (-2.0 against -1.8 %) and beat 0.03 at 30 (-2.7
  against -1.5 %); with the hot schedules 0.02 and 0.03 were close, and 0.01 was not tried.
- Length: kodim23 at quality 60 gained -1.6 % in 8 steps (lr 0.03), -2.7 % by step 12 and -6.5 % by
  step 60 of a 60-step run (its file 17,412 bytes at 36.61 dB against 18,644 at 36.35); kodim01 at
  quality 30, a textured photo at a low rate, gained nothing in 8 steps and -1.7 % in 16. Short runs
  gain least where the rate term dominates, so the low efforts start at 4 steps.
- Later, on validation photos of the training folder (two clean, two BSDS500 JPEGs, 512x384
  centre crops, qualities 30 and 70; the rate at equal PSNR against each image's plain curve):
  the learning rate (0.02, 0.03, 0.04) and a hotter start (1.0 -> 0.2) made no difference at 64
  steps (within 0.01 dB); more steps did, at a falling rate: the clean crops gained 0.20 dB at 64
  steps, 0.24 at 128, 0.26 at 256. Optimising the hyper-latent too (SGA on z through the float
  hyper-synthesis, then the latent alone under z's rounded tables) did worse than the same number
  of steps on the latent alone (32 + 32 steps: 10.2 % against 11.0 %; 48 + 16: 10.2 %), and
  shrinking the residual toward zero first (a dead zone, 0.1-0.2 of a step) lost 5-15 %.
- The middle of the scale, on the same kind of probe (eight validation photos, four clean, four
  BSDS500 JPEGs, 512x384 centre crops, qualities 30 and 70, one thread): 16 steps saved 5.0 % of
  the rate at equal PSNR (clean 4.0 %, JPEG 6.0 %), 20 steps 6.1 % (4.9 / 7.2 %), 24 steps 7.0 %
  (5.6 / 8.3 %): at these lengths each step still buys about as much as the one before. Running
  the gradient's synthesis wholly in bf16 (its last layer too) left the gain unchanged (5.00 %
  against 5.00 % at 16 steps, no crop apart by more than 0.08 points) and made a step about 15 %
  cheaper (a 768x512 effort-5 encode, one thread: 6.5 -> 5.5 s), so effort 5 runs 20 steps in
  the time 16 took.
- Keeping the better of the plain and the optimised symbols (by the rounded objective) means an
  effort never makes the objective worse. With the hot schedules the last iterate was the best
  of every run's checkpoints (a fifth of the way each), so only it is compared, at the end.

The bench (``bench/effort/report.md``; the README's table): on the first 8 Kodak images at
qualities 20-80, effort 5 (20 steps) saved 3.4 % BD-rate (PSNR), effort 9 (256 steps) 8.8 %;
MS-SSIM stayed within about 1.3 %, in 30.6x and 355x the plain encode's time (2 threads, an idle
machine). A run beside a training run had given 24.6x and 284x: other load slowed its plain
encodes more than the efforts' steps.

A lead for the middle of the scale, measured after that bench (not used yet): rounding each element
with a quadratic model of the distortion instead of annealing. One pass forward and back gives the
distortion's gradient to each decoded latent element; a per-channel curvature (here the squared
response of the synthesis to a one-step impulse of the channel, doubled for the neighbours it
ignores) completes a local model, and each symbol moves by -1, 0 or +1, whichever lowers its bits
plus lambda times the modelled distortion. Done on one checkerboard half, then (after a second
gradient pass) on the other, it saved 3.9 % of the rate at equal PSNR on four validation crops (two
clean, two JPEG) at qualities 30 and 70, where 8 SGA steps saved 2.6 % and 20 steps 6.2 %: two
passes for two thirds of what 20 steps buy. Four passes gave 4.2 %; all elements in one pass 1.5 %;
without the doubling nothing (one pass, on one crop: -1.2 %). The impulses cost a forward pass per
channel; one backward pass of a random sign vector over the image estimates the same squared
responses at once (E[(J^T r)_i^2] = |J_i|^2, averaged over each channel's positions): doubled too,
it saved 3.4 % on the same crops (1.5x: 2.0 %, 3x: 2.4 %). It does not add to SGA: the two passes,
then SGA from their symbols (the residual shifted by the symbols they moved), saved 3.9 % with 8
steps (12 steps alone: 4.0 %) and 5.4 % with 16 (20 steps alone: 6.2 %). Alone, its three passes
buy what 11-12 SGA steps do: a cheaper low effort, not a way to 3 % on Kodak within 20x. A hotter,
longer-striding short schedule looked better on the same kind of probe (8 crops, 16 points: 12
steps at Adam 0.08, temperature 1.5 to 0.5, saved 5.9 % against 3.8 % at the shipped 0.02, 0.6 to
0.2; 20 steps 7.3 % against 6.1 %; 0.13 collapsed to nothing) but failed its check on the Kodak
bench (8 images, q20-80: 11 such steps -1.2 % PSNR, +4.3 % MS-SSIM, every image's points moving
along the curve to much lower rates rather than above it), so it was not shipped: a probe's rate at
equal PSNR at two qualities can mislead where a schedule moves points far.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaecodec.errors import VaecodecError

EFFORTS = range(1, 10)
DEFAULT_EFFORT = 1
# Of each effort, 1 to 9: SGA steps, then polishing passes (``vaecodec.latent.sga.polish``).
STEPS = (0, 0, 0, 9, 12, 32, 64, 128, 256)
PASSES = (0, 3, 6, 3, 6, 0, 0, 0, 0)
# The largest image an effort above the default codes (a 12-megapixel photo fits). The synthesis
# runs strip by strip, but the optimisation also holds about a dozen latent-sized tensors (27 bytes
# per pixel in all). Peak memory of an encode, measured with one step (the steps do not add to it):
# 1.84 GB at 8.4 MP, 2.06 GB at 12 MP and 2.54 GB at 24 MP, against 1.65, 1.72 and 1.7-1.9 GB plain.
MAX_PIXELS = 4096 * 3072


@dataclass(frozen=True)
class Schedule:
    """The search of one effort: ``steps`` SGA steps (Adam at ``learning_rate``, the temperature
    going from ``temperatures[0]`` to ``temperatures[1]`` exponentially), then ``passes`` polishing
    passes with the curvature scaled by ``curvature_scale``; ``seed`` of the rounding noise and the
    curvature's random signs. Each step or pass is one pass of the synthesis forward and back (the
    first polishing pass goes back twice, for the curvature too)."""

    steps: int
    passes: int = 0
    learning_rate: float = 0.02
    temperatures: tuple[float, float] = (0.6, 0.2)
    curvature_scale: float = 3.0
    seed: int = 2020

    @property
    def passes_back(self) -> int:
        """Passes of the synthesis forward and back that the search takes (0: none, plain symbols)."""
        return self.steps + self.passes

    def temperature(self, step: int) -> float:
        start, end = self.temperatures
        return start * (end / start) ** (step / max(self.steps - 1, 1))


def check_effort(effort: object) -> int:
    """``effort`` if it is on the scale, else a VaecodecError saying what the scale is."""
    if isinstance(effort, bool) or not isinstance(effort, int) or effort not in EFFORTS:
        raise VaecodecError(f"effort must be a whole number from {EFFORTS[0]} to {EFFORTS[-1]}, got {effort!r}")
    return effort


def schedule(effort: int) -> Schedule:
    """The optimisation an effort runs (no steps at the default)."""
    index = check_effort(effort) - 1
    return Schedule(STEPS[index], PASSES[index])


def size_problem(effort: int, width: int, height: int) -> str | None:
    """Why an image is too large for an effort, or None."""
    if effort == DEFAULT_EFFORT or width * height <= MAX_PIXELS:
        return None
    return (f"effort above {DEFAULT_EFFORT} is limited to images of {MAX_PIXELS / 1e6:.1f} megapixels (memory); "
            f"this one has {width * height / 1e6:.1f}; code it at effort {DEFAULT_EFFORT}")
