"""Text-to-Unlearn: make a GAN forget a concept from its name alone.

Paper: "Prompting Forgetting: Unlearning in GANs via Textual Guidance" (2025). The paper publishes an
outline only (no code, loss weights, steps or layers); every such choice below is a config default:

1. Reference direction i in CLIP image space. ``direction="text"`` (default, cheap):
   i = norm(E_T("<neutral> with <concept>") - E_T("<neutral>")). ``direction="mapper"``: train a
   StyleCLIP latent mapper (Patashnik et al. 2021) w_hat = w + 0.1 * M(w) towards the concept, then
   i = norm(mean_w[E_I(G_f(w_hat)) - E_I(G_f(w))]).
2. Fine-tune a copy G_t of the generator with
   L = [1 - cos(E_I(G_t(w_hat)) - E_I(G_f(w_hat)), -i)]                      (directional, StyleGAN-NADA)
       + lambda_perceptual * perceptual(G_t(w), G_f(w))                       (unweighted-LPIPS proxy)
       + lambda_identity * (1 - cos(id(G_t(v)), id(G_f(v)))),
   w_hat = latents whose image shows the concept (``latent_pool="concept"``: the text-only stand-in
   for the mapper's edited latents) or mapper-edited latents; w = latents without the concept;
   v = both. id(x) = E_I(x) with the concept direction projected out (no face-recognition network
   exists for cartoon faces: "everything about the face except the concept"), so on the forget
   latents it lets the image move along the concept direction only.
   Our addition (``augment``): CLIP sees the same random shift/flip of G_t's and G_f's images, so the
   directional loss cannot be met by pixel patterns that fool this particular CLIP.
3. Trained layers: StyleGAN-NADA's automatic top-k (rank the W+ entries by the gradient of the
   concept's CLIP alignment, train the k synthesis convs they drive; never mapping or toRGB), or
   chosen groups.
Optimiser: Adam with NADA's betas (0, 0.99); NADA uses lr 0.002 * 0.8 and ~300 iterations on
StyleGAN2-FFHQ; our default (lr 0.002, 120 steps, batch 8, top-3 layers) fits the 32 px FaceWorld GAN
on a 2-core CPU; 180 steps or top-5 layers did not forget more on FaceWorld. lambda_perceptual =
lambda_identity = 0.5 were set on a FaceWorld checkpoint (glasses, 500 samples): 1.0/1.0 kept 32% of
the base presence at 9 points of collateral, 0.5/0.5 kept 14% at 10 points. Augmentation (below)
lowered both presence (19% -> 14% kept) and collateral (11 -> 6 points) on an earlier checkpoint.
G_f is the model as it was before this run, so continual requests keep earlier edits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.contract import MethodCall
from backends.gan import concepts
from backends.gan.backend import require_concept_in_base
from backends.registry import register_method

if TYPE_CHECKING:
    import torch

    from backends.gan.adapter import GeneratorAdapter
    from backends.gan.encoders import ImageTextEncoder
    from backends.jobs import JobContext

LAYER_CHOICES = ("auto", "coarse", "middle", "fine", "coarse+middle", "middle+fine", "all")
#: Latents drawn once to split into "shows the concept" / "does not" (by CLIP zero-shot on G_f).
POOL_SIZE = 512
#: Smoothing of |d| in the directional cosine, so the loss has finite gradients at the start where
#: G_t = G_f and d = 0 (NADA instead jitters the image); negligible once edits move CLIP embeddings by > 0.1.
DIRECTION_EPS = 0.05
MAPPER_SCALE = 0.1          # StyleCLIP: w_hat = w + 0.1 * M(w)
MAPPER_L2 = 0.8             # StyleCLIP's latent L2 weight


@dataclass(frozen=True)
class TextToUnlearnConfig:
    """Settings of Text-to-Unlearn (defaults scaled for a 2-core CPU; see the module docstring)."""

    concept: str = param("glasses", help="What to forget, in your words (e.g. glasses, a smile, spectacles)",
                         max_length=concepts.MAX_CONCEPT_CHARS)
    neutral: str = param("a face", help="Neutral text: the direction is '<neutral> with <concept>' minus this",
                         max_length=concepts.MAX_CONCEPT_CHARS)
    direction: str = param("text", choices=("text", "mapper"),
                           help="Reference direction from the text embeddings (fast) or from a trained "
                                "StyleCLIP latent mapper (the paper's full recipe, slower)")
    layers: str = param("auto", choices=LAYER_CHOICES,
                        help="Synthesis layers to train: auto = StyleGAN-NADA top-k, or a named group")
    top_k: int = param(3, help="Number of conv layers trained when layers = auto", min=1, max=16)
    steps: int = param(120, help="Fine-tuning steps", min=1, max=3000)
    batch_size: int = param(8, help="Latents per step (each for the forget and the keep terms)", min=2, max=64)
    lr: float = param(0.002, help="Adam learning rate (StyleGAN-NADA: 0.002 x 0.8)", min=1e-5, max=0.1)
    lambda_perceptual: float = param(0.5, help="Weight of the perceptual preservation term", min=0.0, max=100.0)
    lambda_identity: float = param(0.5, help="Weight of the identity preservation term", min=0.0, max=100.0)
    augment: bool = param(True, advanced=True,
                          help="Show CLIP randomly shifted and flipped copies during training (the same for G_t and "
                               "G_f), so the edit must survive them instead of fooling CLIP with pixel patterns")
    latent_pool: str = param("concept", choices=("concept", "all"), advanced=True,
                             help="Directional loss on latents showing the concept (text mode) or on all")
    mapper_steps: int = param(60, help="Latent-mapper training steps (direction = mapper)", min=1, max=2000,
                              advanced=True)
    eval_samples: int = param(200, help="Samples used to measure presence, degree and preservation",
                              min=20, max=5000)
    seed: int = param(0, help="Random seed of the latent draws", min=0, max=2**31 - 1, advanced=True)

    @classmethod
    def smoke(cls) -> "TextToUnlearnConfig":
        """A cheap configuration for contract tests on the tiny preset."""
        return cls(steps=3, batch_size=4, mapper_steps=2, eval_samples=40)


@register_method("gan", "text_to_unlearn", title="Text-to-Unlearn", config=TextToUnlearnConfig,
                 paper="Prompting Forgetting: Unlearning in GANs via Textual Guidance (2025)")
def run(call: MethodCall) -> None:
    """Fine-tune the generator so that its images move away from the concept's CLIP direction, while
    perceptual and identity terms keep everything else (directional CLIP loss, StyleGAN-NADA style)."""
    import torch

    cfg: TextToUnlearnConfig = call.config
    ctx, model = call.ctx, call.model
    concept = concepts.resolve(call.base.encoder, cfg.concept, cfg.neutral)
    ctx.phase("checking the base model")
    require_concept_in_base(call.base, concept)
    encoder, generator = model.encoder, model.generator
    frozen = generator.clone().freeze()  # G_f: the model before this run (keeps earlier edits)
    rng = torch.Generator().manual_seed(cfg.seed)

    ctx.phase("sampling latents")
    pool_w, shows = split_pool(frozen, encoder, concept, rng, ctx)
    keep_w = pool_w[~shows] if (~shows).sum() >= 2 else pool_w
    forget_w = pool_w[shows] if cfg.latent_pool == "concept" and shows.sum() >= 2 else pool_w
    if cfg.latent_pool == "concept" and shows.sum() < 2:
        ctx.log("the current model hardly shows the concept any more; using all latents")

    mapper = None
    if cfg.direction == "mapper":
        mapper = train_mapper(frozen, encoder, concept, pool_w, cfg, rng, ctx)
        direction = mapper_direction(frozen, encoder, mapper, pool_w[:64])
        forget_w = pool_w
    else:
        direction = text_direction(encoder, concept)

    ctx.phase("choosing layers")
    params = select_parameters(generator, encoder, direction, forget_w[:cfg.batch_size], cfg)
    ctx.log(f"training {len(params)} tensors: {', '.join(name for name, _ in params)}")
    train_generator(generator, frozen, encoder, concept, direction, forget_w, keep_w, mapper, params, cfg, rng, ctx)
    model.edits = model.edits + (concept.text,)


def split_pool(frozen: "GeneratorAdapter", encoder: "ImageTextEncoder", concept: concepts.Concept,
               rng: "torch.Generator", ctx: "JobContext",
               size: int = POOL_SIZE) -> tuple["torch.Tensor", "torch.Tensor"]:
    """POOL_SIZE fresh latents and whether G_f's image of each shows the concept. (M, w_dim), (M,) bool"""
    import torch

    pool_w = frozen.random_w(size, rng)
    with torch.no_grad():
        embeddings = torch.cat([encoder.encode_images(frozen.synthesis(pool_w[i:i + 128]))
                                for i in range(0, size, 128)])
    ctx.check()
    shows = torch.from_numpy(concepts.presence(encoder, concept, embeddings)).to(pool_w.device)
    return pool_w, shows


def text_direction(encoder: "ImageTextEncoder", concept: concepts.Concept) -> "torch.Tensor":
    """i = norm(E_T(concept prompt) - E_T(neutral)), prompts of a multi-valued concept averaged. (D,)"""
    import torch.nn.functional as F

    return F.normalize(encoder.text_direction(concept.prompts) - encoder.text_direction([concept.neutral]), dim=-1)


class LatentMapper:
    """StyleCLIP latent mapper: PixelNorm then a 4-layer MLP, w (N, w_dim) -> offset (N, w_dim)."""

    def __init__(self, w_dim: int, device: str):
        from torch import nn

        layers: list[nn.Module] = []
        for _ in range(3):
            layers += [nn.Linear(w_dim, w_dim), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(w_dim, w_dim))
        self.net = nn.Sequential(*layers).to(device)

    def __call__(self, w: "torch.Tensor") -> "torch.Tensor":
        normed = w * (w.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        return w + MAPPER_SCALE * self.net(normed)


def train_mapper(frozen: "GeneratorAdapter", encoder: "ImageTextEncoder", concept: concepts.Concept,
                 pool_w: "torch.Tensor", cfg: TextToUnlearnConfig, rng: "torch.Generator",
                 ctx: "JobContext") -> LatentMapper:
    """Train w_hat = w + 0.1 M(w) so that G_f(w_hat) shows the concept (CLIP loss + latent L2)."""
    import torch

    mapper = LatentMapper(frozen.w_dim, frozen.device)
    target = encoder.text_direction(concept.prompts)
    optimiser = torch.optim.Adam(mapper.net.parameters(), lr=0.001)
    ctx.phase("training the latent mapper", total=cfg.mapper_steps)
    for step in range(cfg.mapper_steps):
        w = pool_w[torch.randint(len(pool_w), (cfg.batch_size,), generator=rng)]
        w_hat = mapper(w)
        clip_loss = (1 - encoder.encode_images(frozen.synthesis(w_hat)) @ target).mean()
        l2 = (w_hat - w).square().mean()
        loss = clip_loss + MAPPER_L2 * l2
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        ctx.step(step + 1, cfg.mapper_steps, mapper_loss=loss.item())
    mapper.net.requires_grad_(False)
    return mapper


def mapper_direction(frozen: "GeneratorAdapter", encoder: "ImageTextEncoder", mapper: LatentMapper,
                     w: "torch.Tensor") -> "torch.Tensor":
    """i = norm(mean_w[E_I(G_f(w_hat)) - E_I(G_f(w))]). (D,)"""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        moved = encoder.encode_images(frozen.synthesis(mapper(w))) - encoder.encode_images(frozen.synthesis(w))
    return F.normalize(moved.mean(dim=0), dim=-1)


def rank_layers(generator: "GeneratorAdapter", encoder: "ImageTextEncoder", direction: "torch.Tensor",
                w: "torch.Tensor") -> list[str]:
    """StyleGAN-NADA's layer probe: conv layers ranked by how strongly their W+ entry moves the image
    along the concept direction (mean |d cos(E_I(G(ws)), i) / d ws[:, layer]|), strongest first."""
    import torch

    ws = w[:, None].repeat(1, generator.num_ws, 1).detach().requires_grad_(True)  # (B, num_ws, w_dim)
    score = (encoder.encode_images(generator.synthesis(ws)) @ direction).mean()
    (grad,) = torch.autograd.grad(score, ws)
    strength = grad.abs().mean(dim=(0, 2))  # (num_ws,)
    layers = generator.conv_layers()
    return [name for name, _ in sorted(layers, key=lambda item: -float(strength[item[1]]))]


def select_parameters(generator: "GeneratorAdapter", encoder: "ImageTextEncoder", direction: "torch.Tensor",
                      w: "torch.Tensor", cfg: TextToUnlearnConfig) -> list[tuple[str, "torch.nn.Parameter"]]:
    """Parameters to train: top-k conv layers (auto) or the named synthesis groups."""
    if cfg.layers == "auto":
        ranked = rank_layers(generator, encoder, direction, w)
        return generator.parameters_of(layers=ranked[:cfg.top_k])
    groups = ["coarse", "middle", "fine"] if cfg.layers == "all" else cfg.layers.split("+")
    params = generator.parameters_of(groups=groups)
    if not params:
        raise ValueError(f"the layer group {cfg.layers!r} is empty for this {generator.image_size} px generator; "
                         "choose another group")
    return params


def random_augmentation(count: int, rng: "torch.Generator", shift: int = 2):
    """A fixed random x-flip and integer shift (up to ``shift`` px, edge padding) per sample, to apply to
    the G_t and G_f images alike. (N, 3, H, W) -> (N, 3, H, W)"""
    import torch
    import torch.nn.functional as F

    flips = torch.rand(count, generator=rng) < 0.5
    offsets = torch.randint(0, 2 * shift + 1, (count, 2), generator=rng).tolist()

    def apply(images: "torch.Tensor") -> "torch.Tensor":
        images = torch.where(flips.to(images.device)[:, None, None, None], images.flip(-1), images)
        padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
        size_h, size_w = images.shape[-2:]
        return torch.stack([padded[i, :, dy:dy + size_h, dx:dx + size_w] for i, (dy, dx) in enumerate(offsets)])

    return apply


def smoothed_cosine(d: "torch.Tensor", u: "torch.Tensor") -> "torch.Tensor":
    """cos(d, u) with |d| smoothed by DIRECTION_EPS (u unit). (N,)"""
    return (d @ u) / (d.square().sum(dim=-1) + DIRECTION_EPS ** 2).sqrt()


def without_direction(embeddings: "torch.Tensor", direction: "torch.Tensor") -> "torch.Tensor":
    """Embeddings with their component along ``direction`` removed (the identity feature). (N, D)"""
    return embeddings - (embeddings @ direction)[:, None] * direction[None]


def train_generator(generator: "GeneratorAdapter", frozen: "GeneratorAdapter", encoder: "ImageTextEncoder",
                    concept: concepts.Concept, direction: "torch.Tensor", forget_w: "torch.Tensor",
                    keep_w: "torch.Tensor", mapper: LatentMapper | None,
                    params: list[tuple[str, "torch.nn.Parameter"]], cfg: TextToUnlearnConfig,
                    rng: "torch.Generator", ctx: "JobContext") -> None:
    """The fine-tuning loop (directional + perceptual + identity), reporting each step."""
    import torch
    import torch.nn.functional as F

    from backends.gan.metrics import feature_distance

    prompt = encoder.text_direction(concept.prompts)
    generator.generator.requires_grad_(False)
    for _, p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam([p for _, p in params], lr=cfg.lr, betas=(0.0, 0.99))
    ctx.phase("unlearning", total=cfg.steps)
    try:
        for step in range(cfg.steps):
            w_hat = forget_w[torch.randint(len(forget_w), (cfg.batch_size,), generator=rng)]
            if mapper is not None:
                w_hat = mapper(w_hat)
            augment = random_augmentation(cfg.batch_size, rng) if cfg.augment else (lambda x: x)
            emb_t = encoder.encode_images(augment(generator.synthesis(w_hat)))  # (B, D)
            with torch.no_grad():
                emb_f = encoder.encode_images(augment(frozen.synthesis(w_hat)))
            directional = (1 - smoothed_cosine(emb_t - emb_f, -direction)).mean()

            w = keep_w[torch.randint(len(keep_w), (cfg.batch_size,), generator=rng)]
            images_t = generator.synthesis(w)
            keep_t, feats_t = encoder.encode_images_with_features(images_t)
            with torch.no_grad():
                images_f = frozen.synthesis(w)
                keep_f, feats_f = encoder.encode_images_with_features(images_f)
            perceptual = feature_distance(feats_t, feats_f, images_t, images_f).mean()
            identity = (1 - F.cosine_similarity(without_direction(torch.cat([emb_t, keep_t]), direction),
                                                 without_direction(torch.cat([emb_f, keep_f]), direction),
                                                 dim=-1)).mean()
            loss = directional + cfg.lambda_perceptual * perceptual + cfg.lambda_identity * identity
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            ctx.step(step + 1, cfg.steps, loss=loss.item(), directional=directional.item(),
                     perceptual=perceptual.item(), identity=identity.item(),
                     alignment=(emb_t.detach() @ prompt).mean().item())
    finally:
        generator.generator.requires_grad_(False)
