r"""The reference backend's open end: any ``torch_geometric.nn`` convolution, found by class name and built to width.

``pyg:NAME`` names a class of ``torch_geometric.nn`` that is a message-passing convolution
(a subclass of ``MessagePassing``). :func:`build_conv` builds it as a map ``in_width -> hidden``
(square, ``hidden -> hidden``, for an iterated block; rectangular for a layer of the plain ``gnn``):

* constructor arguments named ``in_channels`` get ``in_width``, and ``out_channels`` or ``channels``
  get ``hidden``, unless the user's keyword arguments set them (a conv with ``channels`` alone keeps
  its width, so it cannot be a rectangular layer);
* an ``nn`` argument (GIN-style convolutions) gets a default MLP, :func:`default_mlp`:
  ``Linear(w, hidden) -> ReLU -> Linear(hidden, hidden)`` with ``w = in_width`` (``GINConv``,
  ``GINEConv``: :math:`\mathrm{MLP}((1+\epsilon) z_i + \sum_{j \in N(i)} z_j)`) or ``w = 2 in_width``
  (``EdgeConv``, ``DynamicEdgeConv``, whose MLP sees :math:`[z_i, z_j - z_i]`);
* any other argument without a default must come from the user's keyword arguments.

The convolution is then run once on a 3-node graph, so that a forward that needs more than
``(x, edge_index)`` or an output wider than ``hidden`` is reported when the model is built, not
in the middle of training. In the model, :class:`PyGConv` calls it as ``conv(z, edge_index)``,
adding ``edge_weight=`` / ``edge_attr=`` when the forward takes them *and* the graph has them
(an unweighted graph passes neither, as fixpt's own blocks treat it). Every failure here is a
:class:`~fixpt.errors.FixptError` whose message names the fix.
"""

from __future__ import annotations

import difflib
import functools
import inspect

import torch
from torch import Tensor, nn

from ...errors import FixptError

PREFIX = "pyg:"
WIDTH_ARGS = ("in_channels", "out_channels", "channels")
MLP_INPUT_FACTOR = {"GINConv": 1, "GINEConv": 1, "EdgeConv": 2, "DynamicEdgeConv": 2}  # the width the nn sees, in units of hidden
EDGE_ARGS = ("edge_weight", "edge_attr")
_PROBE_EDGES = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # a 3-node path, both directions


@functools.cache
def conv_names() -> tuple[str, ...]:
    """The message-passing convolutions of ``torch_geometric.nn``, by class name."""
    import torch_geometric.nn as gnn
    from torch_geometric.nn.conv import MessagePassing

    return tuple(sorted(n for n in dir(gnn) if isinstance(getattr(gnn, n), type) and issubclass(getattr(gnn, n), MessagePassing)
                        and getattr(gnn, n) is not MessagePassing))


def conv_class(name: str) -> type:
    """The class ``torch_geometric.nn.<name>``; an unknown name or a class that is not a convolution is an error
    listing close matches."""
    import torch_geometric.nn as gnn

    names = conv_names()
    if name in names:
        return getattr(gnn, name)
    lower = {n.lower(): n for n in names}
    prefixed = [n for n in names if n.lower().startswith(name.lower())]  # GCN -> GCNConv, GCN2Conv
    similar = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)]  # best first
    close = list(dict.fromkeys(prefixed + similar))[:3]
    what = "is not a message-passing convolution" if isinstance(getattr(gnn, name, None), type) else "is not a class of torch_geometric.nn"
    fix = f"did you mean {', '.join(PREFIX + c for c in close)}?" if close else f"use {PREFIX}NAME with NAME one of {', '.join(names)}"
    raise FixptError(f"backbone {PREFIX}{name}: {name!r} {what}; {fix}")


def default_mlp(in_width: int, hidden: int) -> nn.Sequential:
    """The ``nn`` of GIN-style convolutions when none is given: ``Linear(in_width, hidden) -> ReLU -> Linear(hidden, hidden)``."""
    return nn.Sequential(nn.Linear(in_width, hidden), nn.ReLU(), nn.Linear(hidden, hidden))


def _constructor_args(cls: type, hidden: int, kwargs: dict, in_width: int) -> dict:
    """The keyword arguments that build ``cls`` from ``in_width`` to ``hidden``: the user's, plus widths and a default MLP."""
    from torch_geometric.nn.conv import MessagePassing

    name = cls.__name__
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"
              and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    takes_rest = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    valid = set(params) | (set(inspect.signature(MessagePassing.__init__).parameters) - {"self"} if takes_rest else set())
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        hints = [m for k in unknown for m in difflib.get_close_matches(k, sorted(valid), n=1)]
        hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
        raise FixptError(f"block_kwargs: {PREFIX}{name} takes no argument {', '.join(map(repr, unknown))}{hint}; "
                         f"valid: {', '.join(sorted(valid))}")
    args = dict(kwargs)
    for arg in WIDTH_ARGS:
        if arg in params and arg not in args:
            args[arg] = in_width if arg == "in_channels" else hidden
    if in_width != hidden and "channels" in params and "in_channels" not in params:
        raise FixptError(f"{PREFIX}{name} keeps its width (one 'channels' argument), so it cannot map width {in_width} to {hidden} "
                         "as a layer of a plain GNN; iterate it in pign or itergnn, or choose a convolution with in_channels")
    if "nn" in params and "nn" not in args:
        if name not in MLP_INPUT_FACTOR:
            raise FixptError(f"{PREFIX}{name} needs a torch module 'nn', which block_kwargs (JSON) cannot give and fixpt has no "
                             f"default for (it has for {', '.join(MLP_INPUT_FACTOR)}); wrap it from Python with fixpt.DEQ instead")
        args["nn"] = default_mlp(MLP_INPUT_FACTOR[name] * in_width, hidden)
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in args]
    if missing:
        example = ", ".join(f'"{m}": ...' for m in missing)
        raise FixptError(f"{PREFIX}{name} needs the constructor argument(s) {', '.join(missing)}; "
                         f"give them in --block-kwargs '{{{example}}}'")
    return args


def _forward_extras(cls: type) -> tuple[str, ...]:
    """Which of ``edge_weight`` / ``edge_attr`` the forward takes; a forward needing anything else beyond
    ``(x, edge_index)`` is an error."""
    params = list(inspect.signature(cls.forward).parameters.values())[1:]  # after self
    required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty and p.name != "edge_index"
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if len(params) < 2 or params[1].name != "edge_index":
        raise FixptError(f"{PREFIX}{cls.__name__}'s forward takes ({', '.join(p.name for p in params)}), not (x, edge_index) as "
                         "fixpt's graph models call a block, z -> conv(z, edge_index); choose another convolution")
    if required:
        raise FixptError(f"{PREFIX}{cls.__name__}'s forward needs {', '.join(required)} besides (x, edge_index), which a "
                         "block z -> conv(z, edge_index) cannot give; choose another convolution")
    return tuple(p.name for p in params if p.name in EDGE_ARGS)


def build_conv(name: str, hidden: int, kwargs: dict | None = None, in_width: int | None = None) -> tuple[nn.Module, tuple[str, ...]]:
    """``torch_geometric.nn.<name>`` built as a map ``in_width -> hidden`` (default: ``hidden -> hidden``), checked on a
    3-node graph; returns the convolution and the edge arguments (``edge_weight``, ``edge_attr``) its forward takes."""
    in_width = hidden if in_width is None else in_width
    cls = conv_class(name)
    extras = _forward_extras(cls)
    args = _constructor_args(cls, hidden, kwargs or {}, in_width)
    try:
        conv = cls(**args)
    except Exception as e:  # noqa: BLE001 - a bad value in block_kwargs: any exception of the constructor
        raise FixptError(f"block_kwargs: {PREFIX}{name}({_shown(args)}) failed: {type(e).__name__}: {_one_line(e)}; "
                         "fix the values in --block-kwargs") from None
    width = _probe_width(conv, name, in_width, hidden)
    if width != hidden:
        raise FixptError(f"{PREFIX}{name} maps width {in_width} to {width}, but the model needs width {hidden}; change --block-kwargs "
                         f"(e.g. '{{\"concat\": false}}' or '{{\"heads\": 1}}')")
    return conv, extras


def _probe_width(conv: nn.Module, name: str, in_width: int, expected: int) -> int:
    """The output width of ``conv`` on a 3-node graph of zeros (no gradient, no random draws: eval mode)."""
    was_training = conv.training
    conv.eval()
    try:
        with torch.no_grad():
            out = conv(torch.zeros(3, in_width), _PROBE_EDGES)
    except Exception as e:  # noqa: BLE001 - whatever the conv raises, the user must hear it at build time
        if "edge_attr" in _forward_extras(type(conv)):
            return expected  # it may need the graph's edge features: checked on the first real call
        raise FixptError(f"{PREFIX}{name} fails on a plain graph ({type(e).__name__}: {_one_line(e)}); "
                         "it needs inputs that a block z -> conv(z, edge_index) cannot give: choose another convolution") from None
    finally:
        conv.train(was_training)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 3:
        raise FixptError(f"{PREFIX}{name} does not return one (nodes, width) tensor; choose another convolution")
    return out.shape[1]


class PyGConv(nn.Module):
    """A torch-geometric convolution called as fixpt's graph models call a block: ``conv(z, edge_index)``, plus the
    graph's ``edge_weight`` / ``edge_attr`` where the forward takes them and the graph has them. The first
    call turns a failure (e.g. ``GINEConv`` on a graph without edge features) into a one-line error."""

    def __init__(self, name: str, hidden: int, kwargs: dict | None = None, in_width: int | None = None):
        super().__init__()
        self.name = name
        self.conv, self.extras = build_conv(name, hidden, kwargs, in_width)
        self._checked = False

    def forward(self, z: Tensor, edge_index: Tensor, edge_features: dict[str, Tensor | None]) -> Tensor:
        extra = {k: edge_features[k] for k in self.extras if edge_features.get(k) is not None}
        if self._checked:
            return self.conv(z, edge_index, **extra)
        try:
            out = self.conv(z, edge_index, **extra)
        except Exception as e:  # noqa: BLE001 - the first call on a real graph: say what it lacks
            if "edge_attr" in self.extras and "edge_attr" not in extra:
                raise FixptError(f"{PREFIX}{self.name} failed on a graph without edge features ({type(e).__name__}: {_one_line(e)}); "
                                 "it needs a data set with edge_attr (e.g. pascalvoc-sp, with --block-kwargs '{\"edge_dim\": D}'), "
                                 "or choose a convolution without them (e.g. pyg:GINConv)") from None
            raise FixptError(f"{PREFIX}{self.name} failed on this graph ({type(e).__name__}: {_one_line(e)}); "
                             "check --block-kwargs (e.g. edge_dim for the graph's edge features)") from None
        self._checked = True
        return out


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _shown(args: dict) -> str:
    return ", ".join(f"{k}={'<default MLP>' if isinstance(v, nn.Module) else repr(v)}" for k, v in args.items())
