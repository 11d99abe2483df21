"""Named optimizers, their LR schedules and the wrapper that steps them.

Config (``optimizer:`` and ``lr_schedule:``, owned by the trainer):

    optimizer: {type: AdamW, lr: 0.001}          # one optimizer, named "default"
    optimizer:                                   # or several, by name
      generator:     {type: Adam, lr: 2.0e-4, betas: [0.5, 0.999], params: [netG]}
      discriminator: {type: Adam, lr: 2.0e-4, betas: [0.5, 0.999], params: [netD]}
    lr_schedule: {policy: linear_decay, decay_start: 100}    # one schedule for every optimizer
    lr_schedule: {generator: {...}, discriminator: {...}}    # or one per optimizer (name them all)

``params`` selects parameters by module prefix (``netD`` takes ``netD.*``, never ``my_netD.*``);
one optimizer may leave ``params`` out and takes every trainable parameter the others do not.
Besides a ``torch.optim`` class and its arguments, an optimizer entry accepts ``norm_decay`` /
``bias_decay`` (weight decay of norm layers / biases), ``paramwise`` (regex rules on parameter
names: ``lr_mult``, ``decay_mult``), and ``grad_clip`` / ``accumulate`` (default: ``train.*``).

``OptimWrapper`` is what a task's ``train_step`` uses: ``update(loss)`` checks the loss, runs the
(AMP-scaled, accumulation-divided) backward, and at the end of each accumulation window unscales,
clips, steps and zeroes that optimizer's gradients. ``OptimWrappers`` holds them by name with the
one GradScaler they share: ``scaler.step(opt)`` per optimizer, ``scaler.update()`` once per iteration.
"""
from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..registry import ConfigError, check_arguments, did_you_mean
from ..utils.errors import NonFiniteLossError

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm,
              nn.LocalResponseNorm)
# keys of an optimizer entry that are ours, not the torch.optim constructor's
WRAPPER_KEYS = ("norm_decay", "bias_decay", "paramwise", "params", "grad_clip", "accumulate")


def _optimizer_class(name: Any, key: str) -> type:
    names = [n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
             and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != "Optimizer"]
    if not isinstance(name, str) or name not in names:
        raise ConfigError(f"{key}.type: '{name}' is not a torch.optim optimizer.{did_you_mean(str(name), names)} "
                          f"Choose one of {', '.join(sorted(names))}")
    return getattr(torch.optim, name)


def check_optimizer_cfg(cfg: Dict[str, Any], key: str) -> None:
    """Validate an optimizer entry without a model (so a bad value fails before any data is read)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{key} must be a mapping with a 'type', got {cfg!r}")
    cls = _optimizer_class(cfg.get("type"), key)
    args = {k: v for k, v in cfg.items() if k != "type" and k not in WRAPPER_KEYS}
    check_arguments(cls, {"params": None, **args}, f"{key} ({cfg.get('type')})")
    for name in ("lr", "weight_decay", "momentum", "eps", "norm_decay", "bias_decay"):
        v = cfg.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{key}.{name} must be a number, got {v!r}")
        if v < 0:
            raise ConfigError(f"{key}.{name}={v}: must be >= 0")
    clip = cfg.get("grad_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip <= 0):
        raise ConfigError(f"{key}.grad_clip={clip!r}: must be a positive number (max gradient norm) or null")
    acc = cfg.get("accumulate")
    if acc is not None and (isinstance(acc, bool) or not isinstance(acc, int) or acc < 1):
        raise ConfigError(f"{key}.accumulate={acc!r}: must be an integer >= 1")
    params = cfg.get("params")
    if params is not None and not (isinstance(params, str) or (isinstance(params, list) and params
                                                                and all(isinstance(p, str) for p in params))):
        raise ConfigError(f"{key}.params must be a module name or a list of module names, got {params!r}")
    for i, rule in enumerate(cfg.get("paramwise") or []):
        if not isinstance(rule, dict) or "pattern" not in rule:
            raise ConfigError(f"{key}.paramwise.{i} must be a mapping with a 'pattern' (regex on parameter names)")
        unknown = set(rule) - {"pattern", "lr_mult", "decay_mult"}
        if unknown:
            raise ConfigError(f"{key}.paramwise.{i}: unknown key(s) {sorted(unknown)}; accepted: pattern, lr_mult, "
                              f"decay_mult")
        try:
            re.compile(rule["pattern"])
        except re.error as e:
            raise ConfigError(f"{key}.paramwise.{i}.pattern {rule['pattern']!r} is not a valid regex: {e}") from None


def named_optimizer_cfgs(optimizer: Any, lr_schedule: Any) -> Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]]:
    """``{name: (optimizer entry, schedule entry)}`` from the config's two sections, validated."""
    if not isinstance(optimizer, dict) or not optimizer:
        raise ConfigError(f"optimizer must be a mapping (one optimizer with a 'type', or name -> optimizer), "
                          f"got {optimizer!r}")
    if "type" in optimizer:
        opts = {"default": optimizer}
    else:
        opts = {}
        for name, entry in optimizer.items():
            if not isinstance(entry, dict) or "type" not in entry:
                raise ConfigError(f"optimizer.{name}: expected an optimizer entry with a 'type' (the section is "
                                  f"either one optimizer or a mapping name -> optimizer), got {entry!r}")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
                raise ConfigError(f"optimizer: name '{name}' must be an identifier (letters, digits, _)")
            opts[str(name)] = entry
    single = len(opts) == 1 and "type" in optimizer
    for name, entry in opts.items():
        check_optimizer_cfg(entry, "optimizer" if single else f"optimizer.{name}")
    schedule = lr_schedule if lr_schedule is not None else {}
    if not isinstance(schedule, dict):
        raise ConfigError(f"lr_schedule must be a mapping, got {schedule!r}")
    per_name = bool(schedule) and all(isinstance(v, dict) for v in schedule.values()) and set(schedule) <= set(opts) \
        and not single
    if per_name:
        missing = [n for n in opts if n not in schedule]
        if missing:
            raise ConfigError(f"lr_schedule names schedules per optimizer but not for {missing}; give every "
                              f"optimizer ({', '.join(opts)}) a schedule, or write one schedule for all")
        out = {n: (opts[n], schedule[n]) for n in opts}
    else:
        out = {n: (opts[n], schedule) for n in opts}
    for name, (_, sched) in out.items():
        key = f"lr_schedule.{name}" if per_name else "lr_schedule"
        check_arguments(LRScheduler, {"optimizer": 0, "total_iters": 0, "iters_per_epoch": 0, "by_epoch": 0, **sched},
                        key)
    return out


def assign_parameters(model: nn.Module, cfgs: Mapping[str, Dict[str, Any]]) -> Dict[str, List[str]]:
    """Which trainable parameter names each optimizer owns, from the ``params`` module prefixes."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ConfigError("optimizer: the model has no trainable parameters (all frozen?)")
    modules = {n for n, _ in model.named_modules() if n}
    owner: Dict[str, str] = {}
    takes_rest = [n for n, c in cfgs.items() if c.get("params") is None]
    if len(takes_rest) > 1 and len(cfgs) > 1:
        raise ConfigError(f"optimizer: {takes_rest} all leave 'params' out; only one optimizer may take the "
                          f"remaining parameters, the others must name their modules in 'params'")
    for opt_name, c in cfgs.items():
        prefixes = c.get("params")
        if prefixes is None:
            continue
        for prefix in [prefixes] if isinstance(prefixes, str) else prefixes:
            if prefix not in modules and prefix not in names:
                top = sorted({m.split(".")[0] for m in modules})
                raise ConfigError(f"optimizer.{opt_name}.params: '{prefix}' is not a module of the model."
                                  f"{did_you_mean(prefix, modules)} Top-level modules: {', '.join(top)}")
            for n in names:
                if n == prefix or n.startswith(prefix + "."):
                    if owner.get(n, opt_name) != opt_name:
                        raise ConfigError(f"optimizer: parameter '{n}' is selected by both '{owner[n]}' and "
                                          f"'{opt_name}'; each parameter may belong to one optimizer")
                    owner[n] = opt_name
    rest = [n for n in names if n not in owner]
    if takes_rest:
        for n in rest:
            owner[n] = takes_rest[0]
    elif rest:
        raise ConfigError(f"optimizer: {len(rest)} trainable parameter(s) belong to no optimizer (e.g. {rest[:3]}); "
                          f"add their module to an optimizer's 'params', leave 'params' out of one optimizer so it "
                          f"takes the rest, or freeze them")
    out = {o: [n for n in names if owner[n] == o] for o in cfgs}
    empty = [o for o, ps in out.items() if not ps]
    if empty:
        raise ConfigError(f"optimizer: {empty} got no trainable parameters; check their 'params'")
    return out


def build_optimizer(model: nn.Module, cfg: Dict[str, Any], param_names: Optional[Sequence[str]] = None,
                    key: str = "optimizer") -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer over ``param_names`` (default: every trainable parameter), with
    parameter groups for ``norm_decay`` / ``bias_decay`` / ``paramwise`` rules."""
    cfg = dict(cfg)
    check_optimizer_cfg(cfg, key)
    cls = _optimizer_class(cfg.pop("type"), key)
    norm_decay = cfg.pop("norm_decay", None)
    bias_decay = cfg.pop("bias_decay", None)
    rules = cfg.pop("paramwise", None) or []
    for k in WRAPPER_KEYS:
        cfg.pop(k, None)
    base_lr = cfg.get("lr", 1e-3)
    base_wd = cfg.get("weight_decay", 0.0)
    wanted = None if param_names is None else set(param_names)

    norm_params = set()
    for m in model.modules():
        if isinstance(m, NORM_TYPES):
            norm_params.update(id(p) for p in m.parameters(recurse=False))
    groups: Dict[tuple, Dict[str, Any]] = {}
    for pname, p in model.named_parameters():
        if not p.requires_grad or (wanted is not None and pname not in wanted):
            continue
        lr, wd = base_lr, base_wd
        if id(p) in norm_params and norm_decay is not None:
            wd = norm_decay
        elif pname.endswith("bias") and bias_decay is not None:
            wd = bias_decay
        for rule in rules:
            if re.search(rule["pattern"], pname):
                lr = lr * rule.get("lr_mult", 1.0)
                wd = wd * rule.get("decay_mult", 1.0)
        groups.setdefault((lr, wd), {"params": [], "lr": lr, "weight_decay": wd})["params"].append(p)
    if not groups:
        raise ConfigError(f"{key}: the model has no trainable parameters (all frozen?)")
    try:
        return cls(list(groups.values()), **cfg)
    except ValueError as e:  # torch validates its arguments (betas, eps ...): name the section
        raise ConfigError(f"{key}: {e}") from None


class LRScheduler:
    """Per-iteration schedule: linear/constant warmup, then step / multistep / cosine / poly /
    linear_decay / constant.

    ``milestones``/``step_size``/``decay_start`` are in epochs when training by epoch, in iterations
    otherwise. ``linear_decay`` holds the LR until ``decay_start`` and then lowers it linearly to 0 at
    the end of training (the pix2pix/CycleGAN schedule). The schedule is a pure function of the
    iteration, so resuming (even with a longer run) only needs the iteration number; the base LR of
    each group is kept in ``group['initial_lr']``.
    """

    POLICIES = ("constant", "step", "multistep", "cosine", "poly", "linear_decay")

    def __init__(self, optimizer: torch.optim.Optimizer, total_iters: int, iters_per_epoch: int,
                 by_epoch: bool, policy: str = "cosine", warmup_iters: int = 0, warmup_ratio: float = 0.001,
                 warmup: str = "linear", milestones: Optional[Sequence[int]] = None, step_size: Optional[int] = None,
                 gamma: float = 0.1, power: float = 0.9, min_lr_ratio: float = 0.0, warmup_epochs: int = 0,
                 decay_start: Optional[int] = None):
        if policy not in self.POLICIES:
            raise ConfigError(f"lr_schedule.policy: '{policy}' is unknown.{did_you_mean(str(policy), self.POLICIES)} "
                              f"Choose one of {', '.join(self.POLICIES)}")
        if warmup not in ("linear", "constant"):
            raise ConfigError(f"lr_schedule.warmup: '{warmup}' must be 'linear' or 'constant'")
        for name, v in (("warmup_iters", warmup_iters), ("warmup_epochs", warmup_epochs)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"lr_schedule.{name}={v!r}: must be an integer >= 0")
        if not 0 <= warmup_ratio <= 1:
            raise ConfigError(f"lr_schedule.warmup_ratio={warmup_ratio}: must be in [0, 1]")
        unit = iters_per_epoch if by_epoch else 1
        self.optimizer = optimizer
        self.total = max(1, total_iters)
        self.policy = policy
        self.warmup_iters = warmup_iters + warmup_epochs * iters_per_epoch
        self.warmup_ratio = warmup_ratio
        self.warmup = warmup
        self.milestones = sorted(int(m * unit) for m in (milestones or []))
        self.step_size = int(step_size * unit) if step_size else None
        self.decay_start = int(decay_start * unit) if decay_start is not None else None
        if policy == "multistep" and not self.milestones:
            raise ConfigError("lr_schedule: policy 'multistep' needs 'milestones' (a list)")
        if policy == "step" and not self.step_size:
            raise ConfigError("lr_schedule: policy 'step' needs 'step_size'")
        if policy == "linear_decay" and (self.decay_start is None or self.decay_start < 0):
            raise ConfigError("lr_schedule: policy 'linear_decay' needs 'decay_start' >= 0 (where the LR starts "
                              "to fall linearly to 0; epochs when training by epoch, else iterations)")
        self.gamma, self.power, self.min_lr_ratio = gamma, power, min_lr_ratio
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.last_iter = 0
        self.step(0)

    def factor(self, it: int) -> float:
        p = self.policy
        if p == "constant":
            f = 1.0
        elif p == "step":
            f = self.gamma ** (it // self.step_size)
        elif p == "multistep":
            f = self.gamma ** sum(1 for m in self.milestones if it >= m)
        elif p == "cosine":
            f = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(it, self.total) / self.total))
        elif p == "poly":
            f = self.min_lr_ratio + (1 - self.min_lr_ratio) * (1 - min(it, self.total) / self.total) ** self.power
        else:  # linear_decay
            span = max(1, self.total - self.decay_start)
            f = 1.0 - min(max(it - self.decay_start, 0), span) / span
        if it < self.warmup_iters:
            if self.warmup == "constant":
                f *= self.warmup_ratio
            else:
                f *= self.warmup_ratio + (1 - self.warmup_ratio) * it / self.warmup_iters
        return f

    def step(self, it: int) -> None:
        self.last_iter = it
        f = self.factor(it)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def get_lr(self) -> List[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {"last_iter": self.last_iter, "total": self.total, "policy": self.policy}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.step(int(state["last_iter"]))


def build_lr_scheduler(optimizer, cfg: Dict[str, Any], total_iters: int, iters_per_epoch: int,
                       by_epoch: bool, key: str = "lr_schedule") -> LRScheduler:
    cfg = dict(cfg or {})
    check_arguments(LRScheduler, {"optimizer": 0, "total_iters": 0, "iters_per_epoch": 0, "by_epoch": 0, **cfg}, key)
    return LRScheduler(optimizer, total_iters, iters_per_epoch, by_epoch, **cfg)


class OptimWrapper:
    """One named optimizer with its LR schedule, the shared GradScaler, gradient clipping,
    gradient accumulation and DDP ``no_sync``.

    A task calls ``update(loss)`` once per micro-step (usually once per iteration), inside
    ``context()`` when the model is wrapped in DDP. Counting is per optimizer, so an optimizer
    updated every other iteration accumulates over its own calls.
    """

    def __init__(self, name: str, optimizer: torch.optim.Optimizer, scheduler: LRScheduler,
                 scaler: torch.amp.GradScaler, params: List[nn.Parameter], grad_clip: Optional[float] = None,
                 accumulate: int = 1, device_type: str = "cpu"):
        self.name = name
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.params = params
        self.grad_clip = float(grad_clip) if grad_clip else None
        self.accumulate = int(accumulate)
        self.device_type = device_type
        self.updates = 0            # micro-steps (backward passes) so far
        self.steps = 0              # optimizer steps so far
        self.last_grad_norm: Optional[float] = None
        self.stepped = False        # stepped during the current iteration
        self.final_iteration = False  # set by the trainer: flush a partial accumulation window
        self.ddp_model: Optional[nn.Module] = None
        self.on_after_backward: Optional[Callable[["OptimWrapper"], None]] = None

    # ---- what a train_step uses ----------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def at_window_end(self) -> bool:
        """Whether the next ``update`` ends an accumulation window (and so steps the optimizer)."""
        return (self.updates + 1) % self.accumulate == 0 or self.final_iteration

    def context(self):
        """DDP ``no_sync`` while gradients only accumulate; wrap the forward and ``update`` in it."""
        if self.ddp_model is not None and not self.at_window_end():
            return self.ddp_model.no_sync()
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Scaled backward of one micro-step (outside autocast, as PyTorch recommends)."""
        with torch.autocast(self.device_type, enabled=False):
            self.scaler.scale(loss / self.accumulate).backward()
        if self.on_after_backward is not None:
            self.on_after_backward(self)

    def step(self) -> None:
        """Unscale, clip this optimizer's gradients, step. The gradients stay until the next
        window's first backward drops them (``start_window``)."""
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.last_grad_norm = float(norm)
        self.scaler.step(self.optimizer)
        self.steps += 1
        self.stepped = True

    def start_window(self) -> None:
        """Drop the previous window's gradients when the next backward opens a new window.

        Dropping them right before the backward, as a plain ``zero_grad(); backward(); step()`` loop
        does, rather than right after the step, lets the allocator hand the freed memory straight
        to the new gradients: freeing it after the step made every step 3-7% slower on CPU
        (r2plus1d_18, benchmarks/video_cpu.md). Anything left in the gradients by another
        optimizer's backward (a GAN's generator loss reaching the discriminator) goes too."""
        if self.updates % self.accumulate == 0:
            self.optimizer.zero_grad(set_to_none=True)

    def update(self, loss: Any) -> None:
        """backward(loss), then ``step()`` when this ends the accumulation window. ``loss`` is a
        tensor or a dict of loss tensors (summed); a non-finite value stops before the backward."""
        total = check_finite(loss, self.name)
        window_end = self.at_window_end()
        self.start_window()
        self.backward(total)
        self.updates += 1
        if window_end:
            self.step()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    # ---- checkpoint ----------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        pending = None
        if self.updates % self.accumulate != 0:  # mid-window: the accumulated gradients are state too
            pending = [None if p.grad is None else p.grad.detach().clone() for p in self.params]
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "updates": self.updates, "steps": self.steps, "pending_grads": pending}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = int(state.get("updates", 0))
        self.steps = int(state.get("steps") or 0)
        pending = state.get("pending_grads")
        if pending is not None:
            if len(pending) != len(self.params):
                raise ValueError(f"optimizer '{self.name}': the checkpoint holds gradients of {len(pending)} "
                                 f"parameters, the model has {len(self.params)}")
            for p, g in zip(self.params, pending):
                p.grad = None if g is None else g.to(p.device)


def check_finite(loss: Any, optim_name: Optional[str] = None) -> torch.Tensor:
    """The summed loss; raises NonFiniteLossError (with every component) when it is NaN or inf."""
    if isinstance(loss, dict):
        if not loss:
            raise TypeError("update() got an empty loss dict")
        total = sum(loss.values())
        parts = loss
    else:
        total, parts = loss, {"loss": loss}
    if not torch.is_tensor(total):
        raise TypeError(f"update() needs a loss tensor (or a dict of them), got {type(total).__name__}")
    if not math.isfinite(float(total.detach())):
        err = NonFiniteLossError("non-finite loss")
        err.losses = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in parts.items()}
        err.optimizer = optim_name
        raise err
    return total


class OptimWrappers(Mapping[str, OptimWrapper]):
    """The named optimizers of a run and their shared GradScaler (what ``Task.train_step`` gets).

    ``optims["generator"].update(loss)`` steps one; ``optims.update(losses)`` is the default step:
    one backward of the summed losses, then every optimizer steps (at the end of its window).
    """

    def __init__(self, wrappers: Dict[str, OptimWrapper], scaler: torch.amp.GradScaler):
        self._wrappers = dict(wrappers)
        self.scaler = scaler

    def __getitem__(self, name: str) -> OptimWrapper:
        if name not in self._wrappers:
            raise KeyError(f"no optimizer named '{name}'; the config's optimizer section names "
                           f"{', '.join(self._wrappers)}")
        return self._wrappers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._wrappers)

    def __len__(self) -> int:
        return len(self._wrappers)

    # ---- the default step ----------------------------------------------------------------------
    def context(self):
        first = next(iter(self._wrappers.values()))
        return first.context()

    def update(self, loss: Any) -> None:
        """One backward of ``loss`` for all optimizers, then each steps at the end of its window."""
        wrappers = list(self._wrappers.values())
        if len(wrappers) == 1:
            wrappers[0].update(loss)
            return
        if len({w.accumulate for w in wrappers}) > 1:
            raise ConfigError("optimizers stepped together by one backward must share 'accumulate' "
                              f"({', '.join(f'{w.name}={w.accumulate}' for w in wrappers)})")
        total = check_finite(loss)
        ends = [w.at_window_end() for w in wrappers]
        for w in wrappers:
            w.start_window()
        wrappers[0].backward(total)
        for w, end in zip(wrappers, ends):
            w.updates += 1
            if end:
                w.step()

    # ---- the trainer's side --------------------------------------------------------------------
    def begin_iter(self, final: bool) -> None:
        for w in self._wrappers.values():
            w.stepped = False
            w.final_iteration = final

    def end_iter(self) -> bool:
        """``scaler.update()`` once if any optimizer stepped; returns whether any did."""
        stepped = any(w.stepped for w in self._wrappers.values())
        if stepped and self.scaler.is_enabled():
            self.scaler.update()
        return stepped

    def lrs(self) -> Dict[str, float]:
        return {n: w.lr for n, w in self._wrappers.items()}

    def state_dict(self) -> Dict[str, Any]:
        return {n: w.state_dict() for n, w in self._wrappers.items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if set(state) != set(self._wrappers):
            raise ValueError(f"the checkpoint holds optimizers {sorted(state)} but the config names "
                             f"{sorted(self._wrappers)}")
        for n, w in self._wrappers.items():
            w.load_state_dict(state[n])


def build_optim_wrappers(model: nn.Module, cfgs: Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]],
                         scaler: torch.amp.GradScaler, total_iters: int, iters_per_epoch: int, by_epoch: bool,
                         grad_clip: Optional[float] = None, accumulate: int = 1,
                         device_type: str = "cpu") -> OptimWrappers:
    """Build every named optimizer over its parameters (``assign_parameters``) with its schedule."""
    owned = assign_parameters(model, {n: c for n, (c, _) in cfgs.items()})
    by_name = dict(model.named_parameters())
    single = list(cfgs) == ["default"]
    wrappers = {}
    for name, (opt_cfg, sched_cfg) in cfgs.items():
        key = "optimizer" if single else f"optimizer.{name}"
        opt = build_optimizer(model, opt_cfg, owned[name], key)
        sched = build_lr_scheduler(opt, sched_cfg, total_iters, iters_per_epoch, by_epoch)
        wrappers[name] = OptimWrapper(name, opt, sched, scaler, [by_name[n] for n in owned[name]],
                                      grad_clip=opt_cfg.get("grad_clip", grad_clip),
                                      accumulate=opt_cfg.get("accumulate", accumulate), device_type=device_type)
    return OptimWrappers(wrappers, scaler)
