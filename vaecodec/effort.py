"""The encode effort: how much time ``compress`` spends choosing the latent for a smaller file.

Why: the analysis transform's latent is an amortised guess, trained to do well on average over
images, not the best latent of this image under the decoder. At an effort above the default, the
encoder searches for symbols that lower this image's own rate + lambda * distortion (the quality's
trade-off, the training loss), with the decoder fixed: the file is an ordinary file of the same
format, and any vaecodec with these weights decodes it. The search (``vaecodec.latent.sga``) has two
parts: stochastic Gumbel annealing (SGA; Yang, Bamler & Mandt, NeurIPS 2020), and then polishing,
a greedy rounding under a quadratic model of the distortion (below). This module is the scale
(torch-free, so that the command line's options cost no import).

The scale: effort 1 (the default) codes the analysis latent as it is, today's bytes. Efforts 2, 3
and 4 polish the analysis's symbols in 3, 6 and 10 passes; effort 5 anneals 12 steps and polishes 6
passes; efforts 6-9 anneal 32, 64, 128 and 256 steps. Each step or pass is
one pass of the synthesis transform forward and back (about one and a half plain encodes, alone
on one or two threads), wholly in bf16 where the codec runs bf16 (its last layer too, which the
decoder keeps in float32). Every annealing is the same apart from its length: Adam at a learning
rate of 0.02 on the gained residual the coder rounds, the temperature annealed exponentially from
0.6 to 0.2. At the end the found symbols' objective is compared with the plain file's, and the
better kept, so an effort never makes the objective worse.

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
qualities 20-80, BD-rate (PSNR) of the mean curve against the plain encodes; one thread, beside a
training run, so its times are rough): one pass forward and back gives the squared error's
gradient to every symbol, and the same pass's forward, sent back a second time with a random
sign for every pixel, gives Hutchinson's estimate of each channel's curvature (the mean over its
positions of sum_k J_ki^2, J the synthesis's Jacobian; E[(J^T r)_i^2] = sum_k J_ki^2). Each symbol
of one checkerboard half then moves by -1, 0 or +1, whichever lowers its bits plus a weight times
the modelled distortion; the next pass takes the other half.

- The moves of a pass all lower the same errors, so their responses overlap and the error falls
  less than modelled: scaling the curvature by 2 helped on average, but on two of the eight photos
  (a textured port, a BSDS500 JPEG) two passes from the plain symbols raised the objective by
  2.2-2.8 % (and after 9 SGA steps cost most of what those steps had won), where a scale of 3 was
  safe but gained less elsewhere. So the scale starts at 3 and is recalibrated after every pass
  from the error the pass actually left (the next pass's forward gives it): the measured change
  less the modelled linear part, over the modelled quadratic part, kept within 1-8. A pass that
  made the objective worse is undone. With that, no photo lost.
- Per unit of time, polishing beats annealing at the short end, then flattens (first measured with
  the distortion at lambda itself, as below): 3 passes after 9
  steps saved 4.15 % (12 SGA steps 3.31 %, 9 steps with 2 passes at the fixed scale of 2 3.60 %),
  6 passes alone 3.56 %, 10 passes alone 3.98 %, 6 SGA steps and 4 passes 3.75 %; 12 steps and 6
  passes 5.22 % (20 steps alone 5.15 %).
- Polishing weighs the distortion at 0.75 lambda (``Schedule.polish_weight``), which buys more than
  any change of its passes did: 6 passes alone saved 4.25 % against 3.56 % at lambda itself (0.6
  lambda: 4.11 %), 9 steps and 3 passes 4.47 % against 4.15 %, 12 steps and 6 passes 5.47 %
  against 5.22 %. Weighing the annealing's distortion less too did not help (12 steps at 0.75
  lambda 3.23 %; 9 steps and 3 passes, both at 0.5 lambda, 3.60 %, at 1.4 lambda 3.75 %), and
  the final choice, at lambda itself, never turned the polished symbols down (the same figures
  with it at 0.75 lambda). It is not a mismatch of lambda and the curve: along the plain curves
  of these photos an extra unit of squared error buys about 1.4 lambda bits (1.05-1.9), which
  would call for the opposite. What 0.75 corrects is, most likely, the polishing's own model: its
  curvature is one number per channel, and one scale, recalibrated from the moves that raise the
  error together, holds back the moves that save bits.
- With that weight, polishing alone gains most per pass up to about 10 passes, then flattens: 6
  passes 4.10 % (rerun with the inverse GDN's written-out gradient, which changes only float
  rounding: such reruns differ by about 0.15 points), 10 passes 4.73 %, 12 4.76 %, 14 4.85 %,
  against 6 steps and 6 passes 4.70 % and 9 steps and 3 passes 4.47 %. So effort 4 polishes 10
  passes, and effort 5 (12 steps, 6 passes) is where annealing starts to pay. After 32 steps
  (6.91 %), 6 passes added 0.70 points (7.61 %), about what 6 more steps add at that length (20
  to 32 steps added 0.15 a step), so efforts 6-9 only anneal.
- Annealing after polishing does not add (from polished symbols, the residual shifted by the
  moves: 2 passes and 8 steps saved as much as 12 steps alone on four crops), and neither did a
  larger or smaller learning rate at 12 steps (0.01: 2.93 %, 0.03: 2.53 %, 0.04: 2.43 %, against
  3.31 % at 0.02).

A hotter, longer-striding short schedule looked better on an earlier probe (8 crops, rate at equal
PSNR at qualities 30 and 70: 12 steps at Adam 0.08, temperature 1.5 to 0.5, saved 5.9 % against
3.8 % at the shipped 0.02, 0.6 to 0.2) but failed its check on the Kodak bench (11 such steps
-1.2 % PSNR, +4.3 % MS-SSIM, every image's points moving along the curve to much lower rates
rather than above it), so it was not shipped; the probe above measures BD-rates over the whole
curve instead.

The bench (``bench/effort/report.md``; the README's table), the first 8 Kodak images at
qualities 20-80, 2 threads, an idle machine, BD-rate (PSNR) against the plain encodes and the
encode time against theirs: effort 2 -1.7 % in 6.5x, 3 -2.3 % in 10.3x, 4 -2.7 % in 14.9x, 5
-3.3 % in 25.1x, 9 -8.7 % in 317x (per image, effort 4 -1.4 to -5.0 %, mean 3.8 %). Polishing
leaves MS-SSIM as it was (-0.2 to -0.3 %), annealing costs it about 1 %. Kodak gains less than
the probe's photos do, and less for polishing (effort 4 2.7 against 4.73 %, 0.57 of it) than for
annealing (12 steps and 6 passes 0.60 of the probe's; 20 steps 0.66). The previous scale (weight
lambda, effort 4 = 9 steps and 3 passes) saved 1.9/2.4/2.8/3.4/8.8 % at efforts 2/3/4/5/9 in that
bench's run, so on Kodak the weight of 0.75 did not show; the validation probe, on which it was
chosen, gains on every photo.

Where an effort's time goes (kodim05, 2 threads, idle): a plain encode 0.11-0.13 s, a polishing
pass 0.145 s, an annealing step 0.15 s (of which 0.01-0.02 s the rate's elementwise gradient), the
final choice's two forward passes 0.2 s (the decoder's network, its last layer in float32), the
curvature's second pass back about 0.07 s. So 20x a plain encode leaves room for about 13 steps
and passes. On the probe, 14 of them reach 4.69 % (10 steps, 4 passes) and 4.96 % (8 steps, 6
passes), which would be about 3.0 % on Kodak at about 20x: the final choice, which never turned
the found symbols down in these runs, is the largest cost left to cut.
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
# Polishing holds about as much: 1.97 GB at 12.6 MP for effort 2, 1.94 GB with one step (1.45 GB plain).
MAX_PIXELS = 4096 * 3072


@dataclass(frozen=True)
class Schedule:
    """The search of one effort: ``steps`` SGA steps (Adam at ``learning_rate``, the temperature
    going from ``temperatures[0]`` to ``temperatures[1]`` exponentially), then ``passes`` polishing
    passes, the curvature's scale starting at ``curvature_scale``; ``seed`` of the rounding noise and the
    curvature's random signs. Each step or pass is one pass of the synthesis forward and back (the
    first polishing pass goes back twice, for the curvature too)."""

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
