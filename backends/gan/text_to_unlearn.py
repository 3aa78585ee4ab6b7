"""Text-to-Unlearn: make a GAN forget a concept from its name alone.

Paper: "Prompting Forgetting: Unlearning in GANs via Textual Guidance" (2025). The paper publishes an
outline only (no code, loss weights, steps or layers); every such choice below is a config default:

1. Reference direction i in CLIP image space. ``direction="text"`` (default, cheap):
   i = norm(E_T("<neutral> with <concept>") - E_T("<neutral>")). ``direction="mapper"``: train a
   StyleCLIP latent mapper (Patashnik et al. 2021) w_hat = w + 0.1 * M(w) towards the concept, then
   i = norm(mean over w of [E_I(G_f(w_hat)) - E_I(G_f(w))]).
2. Fine-tune a copy G_t of the generator with
   L = [1 - cos(E_I(G_t(w_hat)) - E_I(G_f(w_hat)), u(w_hat))]                (directional, StyleGAN-NADA)
       + lambda_perceptual * perceptual(G_t(w), G_f(w))                       (unweighted-LPIPS proxy)
       + lambda_identity * (1 - cos(id(G_t(v)), id(G_f(v)))),
   w_hat = latents whose image shows the concept (``latent_pool="concept"``: the text-only stand-in
   for the mapper's edited latents) or mapper-edited latents; w = latents without the concept;
   v = both. id(x) = E_I(x) with the edit direction projected out (no face-recognition network
   exists for cartoon faces: "everything about the face except the concept").
   u(w_hat), the direction each forget latent is pushed along, is text-derived:
   - ``per_value``: minus the direction of the value CLIP sees in G_f(w_hat) ("glasses" covers glasses
     and sunglasses). With the two values' average instead, glasses of some seeds turned into sunglasses
     (this CLIP was trained with sunglasses as negatives of "glasses": they lie along minus the average).
   - ``targets="remaining"``, for an attribute with other present values (smiling: neutral, frowning):
     norm(E_T(target value) - E_T(own value)), the targets shared in proportion to how often G_f draws
     them and split along a random direction of W so that the generator can learn which latent goes where.
     Pushing every smile along "minus smile" made 80-88 % of all faces frown (CLIP's opposite of a smile).
   Our addition (``augment``): CLIP sees the same random shift/flip of G_t's and G_f's images.
3. Trained layers: StyleGAN-NADA's automatic top-k (rank the W+ entries by the gradient of the
   concept's CLIP alignment over RANK_LATENTS forget latents, train the k synthesis convs they drive;
   never mapping or toRGB), or chosen groups.

Why the earlier version fooled its CLIP instead of removing glasses (found with the independent judge,
on tune seeds 6,000,000+, never the evaluation's): the layer probe ranked on 8 latents chose other
layers for other seeds; when it skipped the 16 px conv1 (or with ``layers="middle"``), CLIP's glasses
presence fell 41 % -> 30 % while the judge saw no change at all. Ranked on 32 latents every seed picks
the same layers; per-value directions removed the glasses -> sunglasses escape.
Optimiser: Adam with NADA's betas (0, 0.99); NADA uses lr 0.002 * 0.8 and ~300 iterations on
StyleGAN2-FFHQ; our default (lr 0.002, 120 steps, batch 8, top-3 layers) fits the 32 px FaceWorld GAN
on a 2-core CPU (about 10 s). Tuned on tune seeds: 160 steps removed smiles more (judge ratio 0.03-0.12)
but raised the expression collateral of glasses to 5-8 points; top-5 layers let glasses escape into
sunglasses. lambda_perceptual = lambda_identity = 0.5.
What it cannot do: where a forgotten smile goes depends on the seed (neutral:frowning from 48:47 to
31:68 on tune seeds, the reference being 45:55; tried on tune seeds and not kept: assigning each smile
the remaining value CLIP ranks next for it, worst redistribution 13 pts, presence 0.14; one shared target,
the frequency-weighted centroid of the remaining values, worst 14 pts; dropping a sample from the directional
term once CLIP sees its target value, on the idea that the length-free cosine pushes smiles sent to "neutral"
on into frowns: worst 19 pts and worst presence ratio 0.16 against 12 pts and 0.08 without it on the same tune
seeds, so stopping where CLIP sees the target does not fix it), and the perceptual and identity terms read the
same CLIP the edit moves, so they cannot see every change (the judge reports glasses edits
moving 2-5 % of faces between expressions). Nor do its defaults carry over to another generator: on the shipped
GAN fine-tuned 12 minutes to draw mouths more faithfully, the glasses edit removed nothing (judge ratio 1.04-1.13,
CLIP alignment flat, same layers trained; assets/faceworld/GAN.md). Measured numbers: assets/faceworld/GAN.md.
G_f is the model as it was before this run, so continual requests keep earlier edits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.contract import MethodCall
from backends.gan import concepts
from backends.gan.backend import require_concept_in_base
from backends.gan.concept_config import GanConceptConfig
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
#: Forget latents the layer probe averages over (8 picked different layers for different seeds).
RANK_LATENTS = 32


@dataclass(frozen=True)
class TextToUnlearnConfig(GanConceptConfig):
    """Settings of Text-to-Unlearn (defaults scaled for a 2-core CPU; see the module docstring)."""

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
    per_value: bool = param(True, advanced=True,
                            help="Push each forget latent along the text direction of the value CLIP sees in it "
                                 "(glasses or sunglasses) instead of the values' average")
    targets: str = param("remaining", choices=("remaining", "neutral"), advanced=True,
                         help="Where forgotten samples go: 'remaining' sends each to one of the attribute's "
                              "other values in proportion to their frequency (a forgotten smile becomes neutral "
                              "or a frown), 'neutral' pushes all away from the concept towards the neutral text")
    latent_pool: str = param("concept", choices=("concept", "all"), advanced=True,
                             help="Directional loss on latents showing the concept (text mode) or on all")
    mapper_steps: int = param(60, help="Latent-mapper training steps (direction = mapper)", min=1, max=2000,
                              advanced=True)
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
    pool_w, shows, seen_value, pool_classes = split_pool(frozen, encoder, concept, rng, ctx)
    keep_w = pool_w[~shows] if (~shows).sum() >= 2 else pool_w
    use_shown = cfg.latent_pool == "concept" and shows.sum() >= 2
    forget_w = pool_w[shows] if use_shown else pool_w
    if cfg.latent_pool == "concept" and shows.sum() < 2:
        ctx.log("the current model hardly shows the concept any more; using all latents")

    mapper = None
    if cfg.direction == "mapper":
        mapper = train_mapper(frozen, encoder, concept, pool_w, cfg, rng, ctx)
        direction = mapper_direction(frozen, encoder, mapper, pool_w[:64])
        forget_w, forget_directions = pool_w, -direction.expand(len(pool_w), -1)
    else:
        direction = text_direction(encoder, concept)
        per_value = value_directions(encoder, concept)  # (V, D)
        targets = (target_directions(encoder, concept, forget_w, seen_value[shows], pool_classes, rng)
                   if cfg.targets == "remaining" and use_shown else None)
        if targets is not None:
            forget_directions = targets
        elif cfg.per_value and use_shown and len(per_value) > 1:
            forget_directions = -per_value[seen_value[shows]]
        else:
            forget_directions = -direction.expand(len(forget_w), -1)

    ctx.phase("choosing layers")
    params = select_parameters(generator, encoder, direction, forget_w[:RANK_LATENTS], cfg)
    ctx.log(f"training {len(params)} tensors: {', '.join(name for name, _ in params)}")
    train_generator(generator, frozen, encoder, concept, direction, forget_w, forget_directions, keep_w, mapper,
                    params, cfg, rng, ctx)
    model.edits = model.edits + (concept.text,)


def split_pool(frozen: "GeneratorAdapter", encoder: "ImageTextEncoder", concept: concepts.Concept,
               rng: "torch.Generator", ctx: "JobContext",
               size: int = POOL_SIZE) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """POOL_SIZE fresh latents, whether CLIP sees the concept in G_f's image of each, which of the
    concept's values it sees (index into concept.values; 0 for a single-valued concept) and CLIP's value
    of the concept's attribute (-1 without one). (M, w_dim), (M,) bool, (M,) long, (M,) long"""
    import torch

    pool_w = frozen.random_w(size, rng)
    with torch.no_grad():
        embeddings = torch.cat([encoder.encode_images(frozen.synthesis(pool_w[i:i + 128]))
                                for i in range(0, size, 128)])
    ctx.check()
    classes = concepts.classify(encoder, embeddings) if concept.attribute is not None else None
    shows = torch.from_numpy(concepts.presence(encoder, concept, embeddings, classes)).to(pool_w.device)
    seen_value = torch.zeros(size, dtype=torch.long, device=pool_w.device)
    pool_classes = torch.full((size,), -1, dtype=torch.long)
    if classes is not None:
        from backends.faceworld import world

        pool_classes = torch.from_numpy(classes[concept.attribute]).long()
        names = world.ATTRIBUTES[concept.attribute]
        for index, value in enumerate(concept.values):
            seen_value[(pool_classes == names.index(value)).to(pool_w.device)] = index
    return pool_w, shows, seen_value, pool_classes


def text_direction(encoder: "ImageTextEncoder", concept: concepts.Concept) -> "torch.Tensor":
    """i = norm(E_T(concept prompt) - E_T(neutral)), prompts of a multi-valued concept averaged. (D,)"""
    import torch.nn.functional as F

    return F.normalize(encoder.text_direction(concept.prompts) - encoder.text_direction([concept.neutral]), dim=-1)


def value_directions(encoder: "ImageTextEncoder", concept: concepts.Concept) -> "torch.Tensor":
    """One text direction per value the concept covers, i_v = norm(E_T("<neutral> with <v>") - E_T(neutral)),
    in concept.values order ("glasses": glasses, sunglasses); the concept's own prompt when it has one value.
    (V, D)"""
    import torch

    if len(concept.values) <= 1:
        return text_direction(encoder, concept)[None]
    neutral = encoder.text_direction([concept.neutral])
    prompts = [concepts.concept_prompt(value, concept.neutral) for value in concept.values]
    return torch.nn.functional.normalize(torch.stack([encoder.text_direction([p]) for p in prompts]) - neutral,
                                         dim=-1)


def target_directions(encoder: "ImageTextEncoder", concept: concepts.Concept, forget_w: "torch.Tensor",
                      seen_value: "torch.Tensor", pool_classes: "torch.Tensor",
                      rng: "torch.Generator") -> "torch.Tensor | None":
    """Where each forget latent should go, for a concept whose attribute has other present values
    (smiling: neutral or frowning): norm(E_T(prompts of its target t) - E_T(prompts of its own value v))
    (StyleGAN-NADA's target - source text direction). Pushing every smile along "minus smile" turns them
    all into frowns, CLIP's opposite of a smile; here the remaining values share the forgotten samples in
    proportion to how often G_f draws them (CLIP zero-shot on the pool). The split is along a random
    direction r in W (latents ranked by w . r), so it is a function of w that the generator's
    modulations can learn (a random target per latent is not: the edit collapses to one value).
    None when the only remaining value is the absent one (glasses: the neutral prompt is the target).
    forget_w (M, w_dim); seen_value (M,) index into concept.values; pool_classes (P,). -> (M, D)"""
    import torch

    from backends.faceworld import world

    if concept.attribute is None:
        return None
    values = world.ATTRIBUTES[concept.attribute]
    remaining = [v for v in values if v not in concept.values]
    if all(v == world.ABSENT_VALUES.get(concept.attribute) for v in remaining):
        return None
    counts = torch.tensor([float((pool_classes == values.index(v)).sum()) + 1.0 for v in remaining])
    bounds = (counts.cumsum(0) / counts.sum() * len(forget_w)).round().long()  # (R,) rank cut-offs
    r = torch.randn(forget_w.shape[1], generator=rng).to(forget_w.device)
    rank = torch.empty(len(forget_w), dtype=torch.long)
    rank[(forget_w @ r).argsort().cpu()] = torch.arange(len(forget_w))
    targets = torch.searchsorted(bounds, rank, right=True).clamp(max=len(remaining) - 1)

    def embed(value: str) -> "torch.Tensor":
        return encoder.text_direction(world.attribute_prompts(concept.attribute, value))

    sources = torch.stack([embed(v) for v in concept.values])   # (V, D)
    goals = torch.stack([embed(v) for v in remaining])          # (R, D)
    return torch.nn.functional.normalize(goals[targets.to(seen_value.device)] - sources[seen_value], dim=-1)


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
    """i = norm(mean over w of [E_I(G_f(w_hat)) - E_I(G_f(w))]). (D,)"""
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
    """cos(d, u) row by row with |d| smoothed by DIRECTION_EPS; u (D,) or (N, D), unit rows. (N,)"""
    return (d * u).sum(dim=-1) / (d.square().sum(dim=-1) + DIRECTION_EPS ** 2).sqrt()


def without_direction(embeddings: "torch.Tensor", direction: "torch.Tensor") -> "torch.Tensor":
    """Embeddings with their component along ``direction`` ((D,) or one unit row per embedding) removed
    (the identity feature). (N, D)"""
    return embeddings - (embeddings * direction).sum(dim=-1, keepdim=True) * direction


def train_generator(generator: "GeneratorAdapter", frozen: "GeneratorAdapter", encoder: "ImageTextEncoder",
                    concept: concepts.Concept, direction: "torch.Tensor", forget_w: "torch.Tensor",
                    forget_directions: "torch.Tensor", keep_w: "torch.Tensor", mapper: LatentMapper | None,
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
            index = torch.randint(len(forget_w), (cfg.batch_size,), generator=rng)
            w_hat, toward = forget_w[index], forget_directions[index]  # (B, w_dim), (B, D)
            if mapper is not None:
                w_hat = mapper(w_hat)
            augment = random_augmentation(cfg.batch_size, rng) if cfg.augment else (lambda x: x)
            emb_t = encoder.encode_images(augment(generator.synthesis(w_hat)))  # (B, D)
            with torch.no_grad():
                emb_f = encoder.encode_images(augment(frozen.synthesis(w_hat)))
            directional = (1 - smoothed_cosine(emb_t - emb_f, toward)).mean()

            w = keep_w[torch.randint(len(keep_w), (cfg.batch_size,), generator=rng)]
            images_t = generator.synthesis(w)
            keep_t, feats_t = encoder.encode_images_with_features(images_t)
            with torch.no_grad():
                images_f = frozen.synthesis(w)
                keep_f, feats_f = encoder.encode_images_with_features(images_f)
            perceptual = feature_distance(feats_t, feats_f, images_t, images_f).mean()
            removed = torch.cat([toward, direction.expand(len(keep_t), -1)])  # each row's edit direction
            identity = (1 - F.cosine_similarity(without_direction(torch.cat([emb_t, keep_t]), removed),
                                                 without_direction(torch.cat([emb_f, keep_f]), removed),
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
