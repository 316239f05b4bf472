"""Choosing a latent's symbols for one image (the encode effort): stochastic Gumbel annealing,
then polishing.

Yang, Bamler & Mandt, "Improving Inference for Neural Image Compression" (NeurIPS 2020). The
variable is the gained residual u that the coder rounds (``GainedLatent``); the objective is the
training loss of this one image with the decoder fixed: the bits of the symbols under their coding
Gaussians (the tables' scales, so the estimate follows the coder) plus lambda * 255^2 * MSE of the
decoded image, clamped to [0, 1] as the decoder clamps it. Rounding has no useful gradient, so
each step draws a soft rounding of every element between floor(u) and ceil(u): a relaxed
Bernoulli whose odds favour the nearer integer, sharper as the temperature falls. Adam follows
the gradient; at the end the rounded result is kept if its objective beats the plain symbols'.
Plain straight-through rounding and additive uniform noise made the objective worse here.

Polishing (``polish``) then moves single symbols by one where a quadratic model of the distortion
(the gradient at the integer symbols and a curvature, per channel and position) says that pays, one
checkerboard half per pass: per pass it gains more than an annealing step (measurements in
``vaecodec.effort``).

Only the latent moves; the hyper-latent, and with it every mean and scale, stays the analysis's,
so the hyper stream and the integer entropy parameters are computed once. With a context coder
the later groups' means and scales also depend on the earlier groups' symbols: the steps and passes hold
those of the plain symbols fixed, and the final comparison, like the file, uses those that the
chosen symbols give (``GainedLatent.for_symbols``).

Bounded memory and determinism: the synthesis runs forward and back tile by tile (the decoder's
strips, with their margins), each tile's gradient added into the whole in a fixed order, each
convolution on one thread (the caller's ``workers`` threads share out the tiles, as in
``vaecodec.model.tiling``). The rounding noise and the curvature's random signs come from a fixed
seed, drawn on the CPU in one call per step. So the same image, quality and effort give the same
symbols whatever the thread count, and at most ``workers`` tiles' activations are held at once,
besides about eight latent-sized tensors (the variable, Adam's two moments, the gradient, the
scales, offsets, noise and best symbols; polishing's gradient, two responses and moves: for a
24-megapixel photo 54 MB each).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from vaecodec.effort import Schedule
from vaecodec.latent.hyperprior import GainedLatent
from vaecodec.model.layers import gaussian_likelihood
from vaecodec.model.tiling import tile_boxes

Progress = Callable[[int, int], None]  # (steps done, steps in all)
_EDGE = 1e-5  # keeps atanh and the logistic noise finite
_GROUP = 16  # latent channels whose rate terms are differentiated at once
_SCALES = (1.0, 8.0)  # the bounds of the polish's recalibrated curvature scale


@dataclass(frozen=True)
class Synthesis:
    """The decoder's float transform, in the form the search runs it, and how it is tiled: ``tile``
    (rows, columns) and ``margin`` in latent elements, ``scale`` image pixels per latent element.
    The network may run at a lower precision than the decoder's (``synthesis_for_coding`` with
    ``exact_output=False``): the steps' gradients and the objective's values, which choose between
    the plain and the found symbols, all come from it, so the choice compares like with like."""

    network: Callable[[torch.Tensor], torch.Tensor]
    tile: tuple[int, int]
    margin: int
    scale: int


def soft_round(u: torch.Tensor, temperature: float, uniform: torch.Tensor) -> torch.Tensor:
    """An SGA sample of ``u``: floor(u) plus a relaxed choice of rounding up. The logit of rounding
    down is -atanh(distance to the floor) / temperature (up: to the ceiling), and the relaxed
    Bernoulli of those logits at the same temperature takes its logistic noise from ``uniform``."""
    floor = torch.floor(u)
    fraction = u - floor
    down = torch.atanh(fraction.clamp(max=1 - _EDGE))
    up = torch.atanh((1 - fraction).clamp(max=1 - _EDGE))
    noise = torch.log(uniform) - torch.log1p(-uniform)
    return floor + torch.sigmoid(((down - up) / temperature + noise) / temperature)


def _bits(symbols: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Bits of each (soft) symbol under its zero-mean coding Gaussian."""
    return -torch.log2(gaussian_likelihood(symbols, torch.zeros((), device=symbols.device), scales))


@dataclass
class Distortion:
    """One pass of the synthesis over the decoded latent: the summed squared error of the decoded
    image; with a pass back, its gradient to the decoded latent; and, given S samples of random
    signs r of the image's shape, the S Hutchinson responses J^T r (J the clamped synthesis's
    Jacobian; stacked, (S, M, h, w)), whose squares estimate sum_k J_ki^2, as
    E[(J^T r)_i^2] = sum_k J_ki^2."""

    squared_error: float
    gradient: torch.Tensor | None = None
    response: torch.Tensor | None = None


class Polished(NamedTuple):
    """What ``polish`` ends on: the symbols, their decoded image's squared error, and that of the
    symbols it started from (each from a pass of the synthesis that polishing ran anyway)."""

    symbols: torch.Tensor
    squared_error: float
    start_squared_error: float


class _Objective:
    """Rate + lambda * distortion of one image's latent symbols, in bits, and its gradient."""

    def __init__(self, synthesis: Synthesis, pixels: torch.Tensor, latent: GainedLatent, lam: float,
                 workers: int) -> None:
        self.synthesis, self.pixels, self.latent, self.workers = synthesis, pixels, latent, workers
        self.weight = lam * 255**2 / pixels.shape[1]  # per unit of squared error summed over the channels
        self.boxes = tile_boxes(*latent.residual.shape[-2:], synthesis.tile)
        channels = latent.residual.shape[1]
        self.groups = [slice(start, min(start + _GROUP, channels)) for start in range(0, channels, _GROUP)]

    def value(self, symbols: torch.Tensor, squared_error: float | None = None) -> float:
        """The objective of integer symbols, as the coder and the decoder would see them (under
        the means and scales that these symbols give, ``GainedLatent.for_symbols``). A
        ``squared_error`` already measured for them (under the plain symbols' means) saves a pass
        of the synthesis, unless the means follow the symbols (a context coder's)."""
        latent = self.latent.for_symbols(symbols)
        if squared_error is None or self.latent.follow is not None:
            squared_error = self._distortion(self._decoded(symbols, latent), gradient=False).squared_error
        return self.cost(symbols, squared_error, latent)

    def cost(self, symbols: torch.Tensor, squared_error: float, latent: GainedLatent | None = None) -> float:
        """The objective of integer symbols whose decoded image has this squared error."""
        return self.bits(symbols, latent) + self.weight * squared_error

    def bits(self, symbols: torch.Tensor, latent: GainedLatent | None = None) -> float:
        """The bits of integer symbols under their coding Gaussians (by default the analysis's)."""
        scales = (self.latent if latent is None else latent).scales
        return sum(float(_bits(symbols[:, group], scales[:, group]).double().sum()) for group in self.groups)

    def gradient(self, u: torch.Tensor, temperature: float, uniform: torch.Tensor) -> torch.Tensor:
        """The objective's gradient to ``u`` at its soft rounding (``soft_round``).

        The synthesis runs first, on a soft rounding without a graph; the rounding is then redone
        with one, for the rate and the chain rule, a group of channels at a time: the elementwise
        graphs (some twenty latent-sized tensors whole) and the tiles' activations stay small."""
        with torch.no_grad():
            soft = torch.empty_like(u)
            for group in self.groups:
                soft[:, group] = soft_round(u[:, group], temperature, uniform[:, group])
            decoded = self._decoded(soft)
            del soft
        gradient = self.per_symbol(self._distortion(decoded, gradient=True).gradient)  # to the soft symbols
        del decoded
        for group in self.groups:
            with torch.enable_grad():
                piece = u[:, group].detach().requires_grad_(True)
                soft = soft_round(piece, temperature, uniform[:, group])
                bits = _bits(soft, self.latent.scales[:, group]).sum()
                (piece_gradient,) = torch.autograd.grad([bits, soft], [piece],
                                                        [torch.ones_like(bits), gradient[:, group]])
            gradient[:, group] = piece_gradient
        return gradient

    def per_symbol(self, gradient: torch.Tensor) -> torch.Tensor:
        """The squared error's gradient to the decoded latent (``Distortion.gradient``), in place
        made the objective's gradient to the symbols."""
        return gradient.mul_(self.latent.inverse_gain * self.weight)

    def _decoded(self, symbols: torch.Tensor, latent: GainedLatent | None = None) -> torch.Tensor:
        latent = self.latent if latent is None else latent
        return (symbols + latent.offset).mul_(latent.inverse_gain)

    def distortion(self, symbols: torch.Tensor, gradient: bool, signs: torch.Tensor | None = None) -> Distortion:
        """The decoded image's squared error at integer symbols (under the analysis's means and
        scales) and, with ``gradient``, its gradient to the decoded latent and, given ``signs``,
        the Hutchinson responses (``Distortion``) from the same pass forward."""
        return self._distortion(self._decoded(symbols), gradient, signs)

    def random_signs(self, seed: int, samples: int = 1) -> torch.Tensor:
        """``samples`` random signs for every value of the image (int8, (samples, 3, H, W)), for
        ``distortion``'s responses."""
        generator = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (samples, *self.pixels.shape[1:]), generator=generator, dtype=torch.int8)
        return signs.mul_(2).sub_(1).to(self.pixels.device)

    def _distortion(self, y_hat: torch.Tensor, gradient: bool, signs: torch.Tensor | None = None) -> Distortion:
        """``distortion`` of a decoded latent: tile by tile, added up in the tiles' order."""
        pieces = self._map(lambda box: self._tile(y_hat, box, gradient, signs))
        total = Distortion(0.0, torch.zeros_like(y_hat) if gradient else None,
                           y_hat.new_zeros(len(signs), *y_hat.shape[1:]) if gradient and signs is not None else None)
        for (rows, cols), piece_gradient, piece_response, piece_error in pieces:
            for whole, piece in ((total.gradient, piece_gradient), (total.response, piece_response)):
                if whole is not None and piece is not None:
                    whole[..., rows, cols] += piece
            total.squared_error += piece_error
        return total

    def _map(self, run: Callable) -> list:
        workers = min(self.workers, len(self.boxes))
        with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
            return list(pool.map(run, self.boxes) if pool else map(run, self.boxes))

    def _tile(self, y_hat: torch.Tensor, box: tuple[int, int, int, int], gradient: bool, signs: torch.Tensor | None
              ) -> tuple[tuple[slice, slice], torch.Tensor | None, torch.Tensor | None, float]:
        """One tile: its input's extent, the gradients there of the squared error and (given
        ``signs``) of the products with each sample of them, and its centre's squared error."""
        top, left, bottom, right = box
        height, width = y_hat.shape[-2:]
        margin, scale = self.synthesis.margin, self.synthesis.scale
        rows = slice(max(top - margin, 0), min(bottom + margin, height))
        cols = slice(max(left - margin, 0), min(right + margin, width))
        image_height, image_width = self.pixels.shape[-2:]
        out_rows = (top * scale, min(bottom * scale, image_height))  # the centre, less the padding
        out_cols = (left * scale, min(right * scale, image_width))
        if out_rows[0] >= out_rows[1] or out_cols[0] >= out_cols[1]:
            return (rows, cols), None, None, 0.0
        # Grad mode is per thread: set here, in the worker that runs the tile.
        with torch.enable_grad() if gradient else torch.no_grad():
            piece = y_hat[..., rows, cols].detach().requires_grad_(gradient)
            out = self.synthesis.network(piece)
            first_row, first_col = (top - rows.start) * scale, (left - cols.start) * scale
            out = out[..., first_row : first_row + out_rows[1] - out_rows[0],
                      first_col : first_col + out_cols[1] - out_cols[0]].float().clamp(0, 1)
            centre = (..., slice(*out_rows), slice(*out_cols))
            error = (out - self.pixels[centre]).square().sum()
            piece_gradient = piece_response = None
            if gradient:
                (piece_gradient,) = torch.autograd.grad(error, piece, retain_graph=signs is not None)
            if gradient and signs is not None:
                piece_response = torch.cat([torch.autograd.grad((out * sample[centre]).sum(), piece,
                                                                retain_graph=index < len(signs) - 1)[0]
                                            for index, sample in enumerate(signs)])
        return (rows, cols), piece_gradient, piece_response, float(error.detach())


def polish(objective: _Objective, symbols: torch.Tensor, schedule: Schedule, advance: Callable[[], None]) -> Polished:
    """Integer symbols moved by -1, 0 or +1 each, whichever lowers their bits plus lambda times a
    quadratic model of the squared error: its gradient to each symbol and a curvature, an estimate
    of sum_k J_ki^2 (``curvature``, from ``schedule.curvature_samples`` passes back from the first
    pass's forward) times a scale. The model ignores how the moves' responses add up, so each of
    ``schedule.passes`` passes moves one checkerboard half of the positions, the next pass (after a
    new gradient) the other; and as the moves of a pass all lower the same errors, their responses
    overlap and the error falls by less than modelled: the scale starts at
    ``schedule.curvature_scale`` and is then recalibrated after every pass, from the error the pass
    actually left (the next pass's forward; the last pass gets a pass forward alone). A pass that
    made the objective worse is undone."""
    latent, weight = objective.latent, objective.weight
    signs = objective.random_signs(schedule.seed, schedule.curvature_samples)
    run = objective.distortion(symbols, gradient=True, signs=signs)
    del signs
    curvatures = curvature(run.response, latent).mul_(weight)
    scale, squared_error = schedule.curvature_scale, run.squared_error
    start_squared_error, value = squared_error, objective.cost(symbols, squared_error)
    gradient = objective.per_symbol(run.gradient)
    del run
    rows, cols = symbols.shape[-2:]
    checkerboard = (torch.arange(rows)[:, None] + torch.arange(cols)) % 2
    passes = schedule.passes
    for done in range(passes):
        moves = _moves(objective, symbols, gradient, curvatures * scale)
        moves *= (checkerboard == done % 2).to(moves)
        advance()
        candidate = symbols + moves
        run = objective.distortion(candidate, gradient=done < passes - 1)
        modelled_linear = float((gradient * moves).double().sum())
        modelled_square = float((curvatures * moves.square()).double().sum())
        if modelled_square > 0:
            found = (weight * (run.squared_error - squared_error) - modelled_linear) / modelled_square
            scale = min(max(found, _SCALES[0]), _SCALES[1])
        candidate_value = objective.cost(candidate, run.squared_error)
        if candidate_value < value:
            symbols, value, squared_error = candidate, candidate_value, run.squared_error
            if run.gradient is not None:
                gradient = objective.per_symbol(run.gradient)
        del run
    return Polished(symbols, squared_error, start_squared_error)


def curvature(response: torch.Tensor, latent: GainedLatent) -> torch.Tensor:
    """Per latent element, about sum_k J_ki^2 per unit symbol (so the squared error grows by about
    that times d^2 when the symbol moves by d), from Hutchinson responses (``Distortion.response``:
    their squares' mean over the samples).

    A few random-sign samples per element are far too noisy to use alone (one square's spread is
    about its mean), so the estimate is separable: each channel's mean over its positions, times each
    position's factor, the sum over the channels of its squares against the mean of those sums
    (the synthesis's gain at a place, set by its GDNs' normalisation there and zero where the
    decoded pixels clip, acts on every channel alike). Measured on the validation probe (6 passes):
    the channels' means alone saved 4.1 %, this 7.2 %; smoothing the positions' factor over 3x3
    6.2 %, a factor per group of 16 channels 5.7 %, each element's own square 0.2 %."""
    squares = response.square().mean(dim=0, keepdim=True) * latent.inverse_gain**2
    channels = squares.mean(dim=(0, 2, 3), keepdim=True)
    return channels * (squares.sum(dim=1, keepdim=True) / channels.sum().clamp_min(torch.finfo(squares.dtype).tiny))


def _moves(objective: _Objective, symbols: torch.Tensor, gradient: torch.Tensor,
           curvature: torch.Tensor) -> torch.Tensor:
    """Each symbol's move, -1, 0 or +1, that lowers its bits + gradient * move + curvature * move^2
    most (0 where neither lowers it)."""
    moves = torch.zeros_like(symbols)
    for group in objective.groups:
        now, scales = symbols[:, group], objective.latent.scales[:, group]
        bits, best = _bits(now, scales), torch.zeros_like(now)
        for move in (-1.0, 1.0):
            cost = _bits(now + move, scales) - bits + gradient[:, group] * move + curvature[:, group]
            moves[:, group] = torch.where(cost < best, move, moves[:, group])
            best = torch.minimum(cost, best)
    return moves


def refine(synthesis: Synthesis, pixels: torch.Tensor, latent: GainedLatent, lam: float, schedule: Schedule,
           workers: int = 1, progress: Progress | None = None) -> torch.Tensor:
    """The symbols (integers, float32, like ``latent.residual``) that SGA and then ``polish`` find
    for this image: ``pixels`` (1, 3, H, W) in [0, 1] on the latent's device, ``lam`` the level's
    trade-off.

    Returns the plain symbols, round(residual), when the run does not improve on them. Call it with
    torch on one thread (``workers`` threads then run the tiles) for bytes that do not depend on
    the thread count.
    """
    plain = torch.round(latent.residual)
    if not schedule.passes_back:
        return plain
    objective = _Objective(synthesis, pixels, latent, lam, workers)
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, schedule.passes_back)

    found = _anneal(objective, schedule, advance) if schedule.steps else plain
    found_error = plain_error = None
    if schedule.passes:
        found, found_error, start_error = polish(objective, found, schedule, advance)
        plain_error = None if schedule.steps else start_error
    return found if objective.value(found, found_error) < objective.value(plain, plain_error) else plain


def _anneal(objective: _Objective, schedule: Schedule, advance: Callable[[], None]) -> torch.Tensor:
    """The rounded result of ``schedule.steps`` SGA steps from the analysis's residual."""
    u = objective.latent.residual.clone().requires_grad_(True)
    adam = torch.optim.Adam([u], lr=schedule.learning_rate)
    generator = torch.Generator().manual_seed(schedule.seed)
    for step in range(schedule.steps):
        uniform = torch.rand(u.shape, generator=generator).clamp_(_EDGE, 1 - _EDGE).to(u.device)
        u.grad = objective.gradient(u.detach(), schedule.temperature(step), uniform)
        del uniform
        adam.step()
        u.grad = None
        advance()
    return torch.round(u.detach())
