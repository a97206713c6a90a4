r"""PIGN: the Picard Iteration Graph Neural Network (paper, section 5.1, Algorithm 1), in two forms.

``form="paper"``: Algorithm 1 as the paper and its authors' code run it,

.. math::
    x_0 = \mathrm{drop}(\mathrm{ReLU}(W_{enc} X + b)), \qquad
    x_{k+1} = a\, x_k + (1 - a)\, \mathrm{drop}_k\big(\mathrm{ReLU}(\mathrm{GNN}(x_k))\big), \qquad
    \hat y = W_{dec}\, x_n + b

for a fixed number :math:`n` = ``max_iter`` of iterations (``tol`` 0: no stop), with a fresh
dropout mask :math:`\mathrm{drop}_k` at every iteration, xavier-normal encoder and decoder, and a
GAT block of ``heads`` full-width heads *averaged*. There is no free term. In evaluation the map
:math:`x \mapsto a x + (1-a)\,\mathrm{ReLU}(\mathrm{GNN}(x))` is deterministic; ``fixpt iterate``
past :math:`n` continues that truncated iteration, whose limit (if any) the training never saw.

``form="fixed-point"`` (fixpt's own): the encoded features are the free term of a fixed-point problem,

.. math::
    f = \mathrm{ReLU}(W_{enc}\,\mathrm{drop}(X) + b), \qquad
    z_{k+1} = a z_k + (1 - a)\big(\underbrace{\mathrm{ReLU}(\mathrm{GNN}(z_k))}_{T(z_k)} + f\big),
    \qquad z_0 = f, \qquad \hat y = W_{dec}\,\mathrm{drop}(z^*) + b

iterated until :math:`\|z_{k+1} - z_k\| / \|z_{k+1}\| \le` ``tol`` or ``max_iter``, dropout on the raw
input and the decoder input only (so :math:`P` is deterministic, apart from GAT's attention dropout
``attn_dropout`` in training), GAT heads of width ``hidden / heads`` concatenated. With
``contractive`` the block's weights are spectrally normalised so that
:math:`\mathrm{Lip}(T) \le \gamma < 1` (see :mod:`fixpt.models.blocks`), which Banach's theorem
turns into a unique fixed point and a certificate from ``fixpt check-contraction``: in the Euclidean norm
for GCN and for SAGE with its default there, symmetric aggregation; with ``aggregation="mean"`` SAGE keeps
the mean aggregation and is certified in the degree norm :math:`\|D^{1/2} z\|_2` (undirected graphs).
With ``block_init="identity"`` the block (gcn, gat, sage) instead *starts* as the graph's propagation
:math:`T(z) = \mathrm{ReLU}(\gamma M z)` (:func:`~fixpt.models.blocks.identity_init`), a contraction of factor
:math:`\gamma` that training is free to leave; with ``--jac-penalty`` it is the start that keeps the block
propagating while the penalty holds it under its target (docs/results.md).

``backbone`` is one of fixpt's blocks (``gcn``, ``gat``, ``sage``: CSR kernels, the fast path) or
``pyg:NAME``, any ``torch_geometric.nn`` convolution by class name (e.g. ``pyg:GINConv``), built
square at width ``hidden`` with ``block_kwargs`` (a JSON object) as its extra constructor
arguments; see :mod:`fixpt.models.kernels.pyg` for the defaults (GIN's MLP) and what is refused.

The form sets five pieces, each of which can be set on its own to measure what it is worth:
``free_term``, ``dropout_at`` (any of ``input``, ``encoded``, ``loop``, ``decoder``), ``gat_heads``
(``concat`` or ``mean``), ``init`` (``default`` or ``xavier``) and ``tol``; see :data:`FORMS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import FixptError
from ..registry import register
from ..views import FIXED_POINT_VIEW
from .backbone import BACKBONE_HELP, BLOCK_KWARGS_HELP, GraphBackbone
from ..solve import GRAD_MODES, METHODS
from .base import IterativeModel
from .blocks import BLOCK_INITS, block_lipschitz_bound, identity_init, is_pyg, make_block, node_degree
from . import kernels
from .dropout import Dropout, InputLinear

DROPOUT_SITES = ("input", "encoded", "loop", "decoder")
# what each form sets; a piece given explicitly (not None) overrides its form's value
FORMS = {
    "fixed-point": dict(free_term=True, dropout_at="input,decoder", gat_heads="concat", init="default", tol=1e-4),
    "paper": dict(free_term=False, dropout_at="encoded,loop", gat_heads="mean", init="xavier", tol=0.0),
}


@dataclass
class PIGNConfig(GraphBackbone):
    backbone: str = field(default="gcn", metadata={"help": BACKBONE_HELP})
    block_kwargs: str = field(default="", metadata={"help": BLOCK_KWARGS_HELP})
    form: str = field(default="fixed-point", metadata={"choices": tuple(FORMS), "help": "fixed-point (z = T(z) + f, solved to tol) or paper (Algorithm 1: n damped steps, no free term, dropout in the loop)"})
    hidden: int = field(default=64, metadata={"min": 1, "help": "width of z"})
    heads: int = field(default=8, metadata={"min": 1, "help": "attention heads (gat)"})
    alpha: float = field(default=0.5, metadata={"min": 0, "below": 1, "help": "damping: weight kept on z_k"})
    max_iter: int = field(default=10, metadata={"min": 1, "help": "at most this many Picard iterations (paper form: exactly this many)"})
    tol: float | None = field(default=None, metadata={"min": 0, "help": "stop when ||z_{k+1}-z_k|| / ||z_{k+1}|| <= tol (default: the form's, fixed-point 1e-4, paper 0)"})
    solver: str = field(default="picard", metadata={"choices": METHODS, "help": "fixed-point solver"})
    grad: str = field(default="unroll", metadata={"choices": GRAD_MODES, "help": "gradient mode"})
    dropout: float = field(default=0.5, metadata={"min": 0, "below": 1, "help": "dropout probability at the places dropout_at names"})
    attn_dropout: float = field(default=0.6, metadata={"min": 0, "below": 1, "help": "gat only: dropout on attention coefficients inside the block (training only)"})
    contractive: bool = field(default=False, metadata={"help": "spectral-normalise the block to Lip <= gamma"})
    aggregation: str | None = field(default=None, metadata={"choices": ("mean", "sym"), "help": "sage: neighbour aggregation, mean (D^-1 A) or sym (D^-1/2 A D^-1/2) (default: mean; sym with --contractive, certified in the l2 norm; --contractive with mean is certified in the degree norm, check-contraction --state-norm degree)"})
    gamma: float = field(default=0.9, metadata={"above": 0, "below": 1, "help": "contraction factor with --contractive; the propagation's factor with --block-init identity"})
    block_init: str = field(default="default", metadata={"choices": BLOCK_INITS, "help": "the block's start: default (glorot / nn.Linear's draws) or identity (z -> ReLU(gamma M z): weights gamma I, self weight and biases 0; gcn, gat, sage)"})
    free_term: bool | None = field(default=None, metadata={"help": "add the encoded features f at every step (default: the form's, fixed-point yes, paper no)"})
    dropout_at: str | None = field(default=None, metadata={"help": "where dropout acts, comma-separated from input,encoded,loop,decoder (loop: a fresh mask each iteration) (default: the form's, fixed-point input,decoder, paper encoded,loop)"})
    gat_heads: str | None = field(default=None, metadata={"choices": ("concat", "mean"), "help": "gat: concat (heads of hidden/heads) or mean (full-width heads averaged) (default: the form's, fixed-point concat, paper mean)"})
    init: str | None = field(default=None, metadata={"choices": ("default", "xavier"), "help": "encoder and decoder init: default (nn.Linear's) or xavier (xavier-normal, zero bias) (default: the form's, fixed-point default, paper xavier)"})

    def piece(self, name: str):
        """The value of a form-dependent piece: the explicit one, else the form's."""
        value = getattr(self, name)
        return FORMS[self.form][name] if value is None else value

    def dropout_sites(self) -> frozenset[str]:
        sites = frozenset(s.strip() for s in self.piece("dropout_at").split(",") if s.strip())
        unknown = sorted(sites - set(DROPOUT_SITES))
        if unknown:
            raise FixptError(f"dropout_at: unknown place {', '.join(map(repr, unknown))}; use a comma-separated subset of "
                             f"{', '.join(DROPOUT_SITES)} (or an empty string for none)")
        return sites

    def random_step(self) -> bool:
        """Whether the step draws random numbers in training (attention dropout, dropout in the loop), so that it has no fixed point."""
        conv_dropout = self.block_arguments().get("dropout", 0) if is_pyg(self.backbone) else 0
        return ((self.backbone == "gat" and self.attn_dropout > 0) or ("loop" in self.dropout_sites() and self.dropout > 0)
                or (isinstance(conv_dropout, (int, float)) and conv_dropout > 0))

    def validate(self) -> None:
        if self.max_iter < 1 or self.hidden < 1:
            raise FixptError("max_iter and hidden must be >= 1")
        self.validate_backbone()
        if self.contractive and is_pyg(self.backbone):
            raise FixptError(f"--contractive needs backbone gcn or sage: fixpt cannot normalise {self.backbone} to a proven Lipschitz bound")
        if self.block_init == "identity" and self.contractive:
            raise FixptError("--block-init identity and --contractive exclude each other: spectral normalisation cannot divide "
                             "the zero self weight by its norm; drop one of them")
        if self.block_init == "identity" and is_pyg(self.backbone):
            raise FixptError(f"--block-init identity needs backbone gcn, gat or sage; {self.backbone} has no identity start "
                             "(drop --block-init)")
        if self.contractive and not 0 < self.gamma < 1:
            raise FixptError(f"gamma={self.gamma} must lie in (0, 1) for a contraction")
        if self.random_step() and self.grad != "unroll":
            raise FixptError(f"grad={self.grad!r} needs a deterministic operator, but dropout inside the loop (attn_dropout with gat, "
                             "'loop' in dropout_at, or a pyg conv's dropout) draws a new operator every step, which has no fixed point: use --grad unroll")
        if self.piece("tol") < 0:
            raise FixptError(f"tol={self.tol} must be >= 0 (0: always run max_iter iterations)")
        if self.backbone == "gat" and self.piece("gat_heads") == "concat" and self.hidden % self.heads:
            raise FixptError(f"hidden={self.hidden} must be divisible by heads={self.heads} for concatenated GAT heads "
                             "(or use --gat-heads mean)")


@register("pign", config=PIGNConfig, task="node-classification", view=FIXED_POINT_VIEW, example={"hidden": 8, "csbm_nodes": 120, "epochs": 2})
class PIGN(IterativeModel):
    """Picard-iteration GNN: one GNN block iterated with shared weights (paper, Alg. 1; see ``form``)."""

    def __init__(self, cfg: PIGNConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.cfg = cfg
        sites = cfg.dropout_sites()
        p = {site: (cfg.dropout if site in sites else 0.0) for site in DROPOUT_SITES}
        self.free_term = bool(cfg.piece("free_term"))
        backend = kernels.backend()
        self.encoder = nn.Sequential(InputLinear(in_dim, cfg.hidden, dropout=p["input"], backend=backend), nn.ReLU(),
                                     Dropout(p["encoded"], backend))
        self.block = make_block(cfg.backbone, cfg.hidden, heads=cfg.heads, contractive=cfg.contractive, gamma=cfg.gamma,
                                attn_dropout=cfg.attn_dropout, concat_heads=cfg.piece("gat_heads") == "concat", backend=backend,
                                block_kwargs=cfg.block_arguments(), aggregation=cfg.aggregation)
        self.loop_drop = Dropout(p["loop"], backend)
        self.decoder = nn.Sequential(Dropout(p["decoder"], backend), nn.Linear(cfg.hidden, out_dim))
        self.graphs = kernels.GraphCache(self.block.graph_needs, backend)
        if cfg.block_init == "identity":
            identity_init(self.block, cfg.gamma)
        if cfg.piece("init") == "xavier":  # the authors' init of the two linear maps; the block keeps its glorot init
            for linear in (self.encoder[0], self.decoder[1]):
                nn.init.xavier_normal_(linear.weight)
                nn.init.zeros_(linear.bias)

    def encode(self, data) -> Tensor:
        graph = self.graphs(data)  # built here, before the solve (whose steps may run inside torch.func transforms)
        return self.encoder(graph.x)  # (N, hidden): z_0, and the free term f when the form has one

    def step(self, z: Tensor, f: Tensor, data) -> Tensor:
        """:math:`P(z) = \\mathrm{drop}(\\mathrm{ReLU}(\\mathrm{GNN}(z))) [+ f]`; each call draws its own dropout mask."""
        new = self.loop_drop(torch.relu(self.block(z, self.graphs(data))))
        return new + f if self.free_term else new

    def decode(self, z: Tensor, data) -> Tensor:
        return self.decoder(z)  # (N, classes) logits

    def solver_options(self) -> dict:
        c = self.cfg
        return dict(method=c.solver, alpha=c.alpha, tol=c.piece("tol"), max_iter=c.max_iter, grad=c.grad, batched=False,
                    frozen=self.seed_batched)

    def certified_lipschitz(self, data, norm: str = "l2") -> tuple[float | None, str]:
        return block_lipschitz_bound(self.block, data.edge_index, data.num_nodes, norm)

    def state_scale(self, data, norm: str) -> Tensor | None:
        r"""``degree``: :math:`S = D^{1/2}` over the nodes (:math:`d_i` the messages node :math:`i` aggregates, at
        least 1), the norm under which mean aggregation :math:`D^{-1}A` becomes :math:`D^{-1/2} A D^{-1/2}`, of
        norm 1 on an undirected graph, where its Euclidean norm is about the square root of the largest hub
        degree (6.85 on Cora)."""
        if norm != "degree":
            return super().state_scale(data, norm)
        return node_degree(data.edge_index, data.num_nodes).sqrt()[:, None].to(self.decoder[-1].weight.dtype)
