"""The encode effort: how much time ``compress`` spends choosing the latent for a smaller file.

Why: the analysis transform's latent is an amortised guess, trained to do well on average over
images, not the best latent of this image under the decoder. At an effort above the default, the
encoder searches for symbols that lower this image's own rate + lambda * distortion (the quality's
trade-off, the training loss), with the decoder fixed: the file is an ordinary file of the same
format, and any vaecodec with these weights decodes it. The search (``vaecodec.latent.sga``) has two
parts: stochastic Gumbel annealing (SGA; Yang, Bamler & Mandt, NeurIPS 2020), and then polishing,
a greedy rounding under a quadratic model of the distortion (below). This module is the scale
(torch-free, so that the command line's options cost no import).

The scale: effort 1 (the default) codes the analysis latent as it is, today's bytes. Efforts 2-5
polish the analysis's symbols in 2, 4, 6 and 10 passes; efforts 6-9 anneal 32, 64, 128 and 256
steps, then polish 6 passes. Each step or pass is one pass of the synthesis transform forward and
back (about one plain encode, alone on one or two threads), wholly in bf16 where the codec runs
bf16 (its last layer too, which the decoder keeps in float32). Every annealing is the same apart
from its length: Adam at a learning rate of 0.02 on the gained residual the coder rounds, the
temperature annealed exponentially from 0.6 to 0.2. At the end the found symbols' objective is
compared with the plain file's (by the search network's errors, most of them measured on the way),
and the better kept, so an effort never makes the objective worse.

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

Polishing (measured 2026-12-02 on a probe like the bench's: eight validation photos of the
training folder, 768x512 centre crops where they are larger, six clean, two BSDS500 JPEGs,
qualities 20-80, BD-rate (PSNR) of the mean curve against the plain encodes; one thread; reruns
that change only float rounding differ by about 0.15 points): one pass forward and back gives the
squared error's gradient to every symbol, and the same pass's forward, sent back again with a
random sign for every pixel, gives Hutchinson's estimate of the curvature sum_k J_ki^2 (J the
synthesis's Jacobian; E[(J^T r)_i^2] = sum_k J_ki^2). Each symbol of one checkerboard half then
moves by -1, 0 or +1, whichever lowers its bits plus lambda times the modelled distortion; the
next pass takes the other half.

- The moves of a pass all lower the same errors, so their responses overlap and the error falls
  less than modelled. So the curvature's scale is recalibrated after every pass from the error
  the pass actually left (the next pass's forward gives it): the measured change less the
  modelled linear part, over the modelled quadratic part, kept within 1-8. A pass that made the
  objective worse is undone. (A fixed scale of 2 raised the objective of two of the eight photos
  by 2.2-2.8 %.)
- The curvature, per channel and position (``vaecodec.latent.sga.curvature``), mattered most.
  First it was each channel's mean over its positions: 6 passes saved 3.56 %, 10 passes 3.98 %,
  and weighing the distortion at 0.75 lambda instead of lambda lifted those to 4.1-4.25 % and
  4.73 %, flattening by 10 passes (14: 4.85 %). The separable estimate (the channel's mean times
  the position's factor, summed over the channels) took 6 passes to 7.2 % at lambda itself, where
  0.75 lambda no longer helped (7.2 %; 0.6 lambda 6.3 %), and the measured scale fell from 2-3 to
  1.1-1.8, so it starts at 1.5. The positions differ: on a BSDS500 photo with clipped highlights a
  tenth of them had under 0.05 of the mean factor (moves there cost no error), and that photo
  went from 2.6 to 7.7 %; every photo gained. Two samples of signs (two passes back from the same
  forward) took 6 passes from 7.2 to 7.7 % (three 7.8 %, four 7.8 %; a new sample every pass, at
  a pass back each, 7.7 %), so it takes two.
- With that curvature, polishing alone: 2 passes 5.8 % (6.1 % with two samples), 4 passes 6.7 %,
  6 passes 7.7 %, 8 passes 7.4 % and 10 passes 7.5 % with one sample. Annealing first still adds:
  12 steps and 6 passes 7.95 %, 32 steps and 6 passes 9.3 %, against 32 steps alone 6.9 %, so
  efforts 6-9 anneal and then polish 6 passes. With two samples, 32 steps and 6 passes saved
  9.4 % in 54x, 16 steps and 10 passes 8.9 % in 37x.
- Annealing after polishing does not add (from polished symbols, the residual shifted by the
  moves: 2 passes and 8 steps saved as much as 12 steps alone on four crops), and neither did a
  larger or smaller learning rate at 12 steps (0.01: 2.93 %, 0.03: 2.53 %, 0.04: 2.43 %, against
  3.31 % at 0.02), nor weighing the annealing's distortion differently (12 steps at 0.75 lambda
  3.23 %).

A hotter, longer-striding short schedule looked better on an earlier probe (8 crops, rate at equal
PSNR at qualities 30 and 70: 12 steps at Adam 0.08, temperature 1.5 to 0.5, saved 5.9 % against
3.8 % at the shipped 0.02, 0.6 to 0.2) but failed its check on the Kodak bench (11 such steps
-1.2 % PSNR, +4.3 % MS-SSIM, every image's points moving along the curve to much lower rates
rather than above it), so it was not shipped; the probe above measures BD-rates over the whole
curve instead.

The bench (``bench/effort/report.md``; the README's table), the first 8 Kodak images at
qualities 20-80, 2 threads, an idle machine, BD-rate (PSNR) against the plain encodes and the
encode time against theirs (0.14 s): effort 2 -3.5 % in 5.2x, 3 -3.6 % in 7.4x, 4 -4.6 % in
9.7x, 5 -4.8 % in 14.4x, 6 -6.4 % in 50x, 9 -8.9 % in 318x (per image, effort 4 -3.3 to -6.5 %,
mean 5.4 %; effort 9 -7.7 to -14.5 %, mean 9.7 %). MS-SSIM, which nothing here optimises, moves by
+0.1 to +0.9 %. With each channel's mean curvature (and 0.75 lambda) the same bench had given
1.7/2.3/2.7/3.3/8.7 % at efforts 2-5 and 9 (then 3, 6, 10 passes, 12 steps and 6 passes, 256
steps) in 6.5/10.3/14.9/25.1/317x. Kodak gains about 0.6 of the probe's figures for polishing
(effort 4: 4.6 against 7.7 %), and less where annealing comes first (effort 6: 6.4 against 9.3 %):
after 256 steps the 6 passes added only 0.2 points on Kodak.

Where an effort's time goes (kodim05, 2 threads, idle): a plain encode 0.11-0.14 s, a polishing
pass about 0.15 s, an annealing step 0.15 s (of which 0.01-0.02 s the rate's elementwise
gradient), each curvature sample's pass back about 0.07 s. The final choice between the found and
the plain symbols takes the errors polishing measured with the search network (the last pass is
checked by a pass forward alone), where it took two passes forward of the decoder's network
(0.2 s) before; after annealing, the plain symbols' error costs one pass forward.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaecodec.errors import VaecodecError

EFFORTS = range(1, 10)
DEFAULT_EFFORT = 1
# Of each effort, 1 to 9: SGA steps, then polishing passes (``vaecodec.latent.sga.polish``).
STEPS = (0, 0, 0, 0, 0, 32, 64, 128, 256)
PASSES = (0, 2, 4, 6, 10, 6, 6, 6, 6)
# The largest image an effort above the default codes (a 12-megapixel photo fits). The synthesis
# runs strip by strip, but the optimisation also holds about a dozen latent-sized tensors (27 bytes
# per pixel in all). Peak memory of an encode, measured with one step (the steps do not add to it):
# 1.84 GB at 8.4 MP, 2.06 GB at 12 MP and 2.54 GB at 24 MP, against 1.65, 1.72 and 1.7-1.9 GB plain.
# Polishing holds about as much: 1.63 GB at 12.6 MP for effort 2 (two samples of int8 signs; 1.97 GB with one
# sample in float32 before), 1.94 GB with one step (1.45 GB plain).
MAX_PIXELS = 4096 * 3072


@dataclass(frozen=True)
class Schedule:
    """The search of one effort: ``steps`` SGA steps (Adam at ``learning_rate``, the temperature
    going from ``temperatures[0]`` to ``temperatures[1]`` exponentially), then ``passes`` polishing
    passes, the curvature's scale starting at ``curvature_scale``, the curvature estimated from
    ``curvature_samples`` samples of random signs; ``seed`` of the rounding noise and the signs.
    Each step or pass is one pass of the synthesis forward and back (the first polishing pass goes
    back once more for each sample of signs)."""

    steps: int
    passes: int = 0
    learning_rate: float = 0.02
    temperatures: tuple[float, float] = (0.6, 0.2)
    curvature_scale: float = 1.5
    curvature_samples: int = 2
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
