"""The one text-to-image model of every diffusion preset (FaceWorld, tiny, Stable Diffusion) and its sampling loop.

:class:`DiffusionModel` bundles what a text-conditioned diffusion model needs, as in diffusers'
``StableDiffusionPipeline`` (Rombach et al., 2022): a tokenizer and text encoder, a
``UNet2DConditionModel`` predicting noise, a sampling scheduler, a DDPM training scheduler
(``add_noise`` and ``alphas_cumprod`` for the training-based erasure methods) and an optional VAE
(SD and FaceWorld are both latent models). It knows nothing of any UI: sampling takes an
optional per-step ``callback(step, total)``, and image ``i`` depends only on ``(prompt_i, seed_i)``.

Unlearning edits a clone that SHARES the frozen modules of its source until a method asks for
its own copy (:meth:`DiffusionModel.editable_unet`, :meth:`DiffusionModel.editable_text_encoder`),
so a UCE edit copies the UNet only and a few-shot text-encoder edit copies the text encoder only.
The tokenisation, pixel and sampling helpers below are the only copies in the code base (the
FaceWorld package holds its model's architecture and weight files only). Heavy libraries are
imported inside functions only.
"""
from __future__ import annotations

import contextlib
import copy
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

from backends.pixels import from_uint8, to_uint8

if TYPE_CHECKING:
    import numpy as np
    import torch

GENERATION_BATCH = 32  # prompts per sampling batch (fixed, so equal configs batch identically)


def tokenize_padded(tokenizer: Any, prompts: list[str], max_tokens: int,
                    device: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Token ids and attention mask ``(N, T)`` padded / truncated to ``max_tokens`` (T), on ``device``."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a list of strings")
    batch = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=max_tokens,
                      return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def guided_denoise(model: Any, scheduler: Any, x: "torch.Tensor", states: "torch.Tensor", guidance: float,
                   stop_after: int | None = None, callback: Callable[[int, int], None] | None = None,
                   trajectory: list | None = None) -> tuple["torch.Tensor", int]:
    """Run ``scheduler``'s timesteps (set beforehand) on ``x`` with classifier-free guidance.

    ``states`` is ``cat([uncond, cond])`` (2N, T, D) when ``guidance != 1``, else cond (N, T, D)
    (Ho & Salimans, 2022). Stops after ``stop_after`` steps if given; returns x and the next
    timestep (0 when finished). ``trajectory``, if a list, collects (t, x_t) before each step.
    """
    import torch

    use_cfg = guidance != 1.0
    timesteps = scheduler.timesteps
    stop = len(timesteps) if stop_after is None else stop_after
    for i, t in enumerate(timesteps[:stop]):
        if trajectory is not None:
            trajectory.append((int(t), x))
        x_in = scheduler.scale_model_input(torch.cat([x, x]) if use_cfg else x, t)
        eps = model(x_in, t, encoder_hidden_states=states).sample
        if use_cfg:
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + guidance * (eps_cond - eps_uncond)
        x = scheduler.step(eps, t, x).prev_sample
        if callback is not None:
            callback(i + 1, len(timesteps))
    next_t = int(timesteps[stop]) if stop < len(timesteps) else 0
    return x, next_t


@dataclass
class DiffusionModel:
    """A text-to-image diffusion model bundle (base or editable clone).

    ``judge`` gives the verdicts on generated images (FaceWorld's attribute judge, shared by every clone,
    never in a method's loss) and ``clip`` FaceWorld CLIP's opinion; both are None on presets without
    them (Stable Diffusion; the tiny preset has an untrained judge and no CLIP).
    ``gold`` maps a concept name to a loader of a model retrained without that concept.
    """

    unet: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any                 # sampling scheduler; a fresh copy is made for every call
    noise_scheduler: Any           # DDPM: add_noise, alphas_cumprod (training-based methods)
    vae: Any = None                # AutoencoderKL for latent models, None for pixel space
    preset: str = ""
    device: str = "cpu"
    image_size: int = 32           # output side in pixels
    max_tokens: int = 24           # prompts are padded / truncated to this many tokens
    default_steps: int = 20
    default_guidance: float = 5.0
    neutral_prompt: str = "a face"  # the "no concept" anchor used by guide / pseudo prompts
    faceworld: bool = True         # prompts speak FaceWorld's caption language (FaceWorld, tiny)
    use_attention_mask: bool = True  # BERT-style encoders see the mask; SD's CLIP does not
    judge: Any = None
    clip: Any = None
    gold: dict[str, Callable[[], "DiffusionModel"]] = field(default_factory=dict)
    frozen: bool = True            # a preset's shared base: never edited, generations cached
    owns_unet: bool = False
    owns_text_encoder: bool = False
    _cache: dict = field(default_factory=dict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    # ---------------------------------------------------------------- shapes
    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def latent_size(self) -> int:
        return int(self.unet.config.sample_size)

    # ---------------------------------------------------------------- cloning
    def clone(self) -> "DiffusionModel":
        """An editable copy sharing every module with ``self`` until a method asks for its own."""
        return replace(self, frozen=False, owns_unet=False, owns_text_encoder=False, _cache={},
                       _lock=threading.Lock())

    def frozen_view(self) -> "DiffusionModel":
        """A read-only model sharing this model's CURRENT modules (the "before" of a training run)."""
        return replace(self, frozen=True, owns_unet=False, owns_text_encoder=False, _cache={},
                       _lock=threading.Lock())

    def editable_unet(self) -> Any:
        """This clone's own UNet (deep-copied from the shared one on first use)."""
        return self._own("unet")

    def editable_text_encoder(self) -> Any:
        """This clone's own text encoder (deep-copied from the shared one on first use)."""
        return self._own("text_encoder")

    def _own(self, module: str) -> Any:
        """The module ``module`` ("unet" or "text_encoder"), deep-copied on first use so that it is this clone's."""
        if self.frozen:
            raise RuntimeError("a frozen base model is never edited; clone it first")
        if not getattr(self, f"owns_{module}"):
            setattr(self, module, copy.deepcopy(getattr(self, module)))
            setattr(self, f"owns_{module}", True)
        return getattr(self, module)

    def cross_attention_layers(self, unet: Any = None) -> dict[str, Any]:
        """Name -> ``attn2`` module (cross-attention, with ``to_k`` / ``to_v``) of the UNet (or of ``unet``)."""
        model = self.unet if unet is None else unet
        return {name: m for name, m in model.named_modules() if name.endswith("attn2")}

    # ---------------------------------------------------------------- text
    def tokenize(self, prompts: list[str]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Token ids and attention mask ``(N, T)`` padded to ``max_tokens``."""
        return tokenize_padded(self.tokenizer, prompts, self.max_tokens, self.device)

    def last_real_token(self, prompts: list[str]) -> "torch.Tensor":
        """Index ``(N,)`` of each prompt's last non-special token (its concept word; 0 if none)."""
        import torch

        ids, mask = self.tokenize(prompts)
        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), device=ids.device)
        real = (mask > 0) & ~torch.isin(ids, special)  # (N, T)
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        return torch.where(real, positions, torch.zeros_like(positions)).max(dim=1).values

    def encode(self, prompts: list[str], text_encoder: Any = None,
               prefix: "torch.Tensor | None" = None) -> "torch.Tensor":
        """Text states ``(N, T, D)`` conditioning the UNet.

        ``prefix`` ``(k, E)`` or ``(N, k, E)``: continuous input embeddings inserted right after the
        start token (adversarial tokens of AdvUnlearn / UnlearnDiffAtk); the prompt is shifted
        right and truncated to ``max_tokens``. Gradients flow to ``prefix`` and to any trainable
        encoder parameters when grad is enabled.
        """
        import torch

        encoder = self.text_encoder if text_encoder is None else text_encoder
        ids, mask = self.tokenize(prompts)
        hook = None
        if prefix is not None:
            k = prefix.shape[-2]
            if not 1 <= k < self.max_tokens - 1:
                raise ValueError(f"prefix of {k} tokens does not fit in {self.max_tokens} tokens")
            filler = torch.full_like(ids[:, :k], int(ids[0, 0]))
            ids = torch.cat([ids[:, :1], filler, ids[:, 1:-k]], dim=1)  # (N, T)
            mask = torch.cat([mask[:, :1], torch.ones_like(mask[:, :k]), mask[:, 1:-k]], dim=1)
            prefix_n = prefix.expand(ids.shape[0], -1, -1) if prefix.dim() == 2 else prefix  # (N, k, E)

            def insert_prefix(_module, _inputs, output):  # output (N, T, E)
                return torch.cat([output[:, :1], prefix_n.to(output.dtype), output[:, 1 + k:]], dim=1)

            hook = encoder.get_input_embeddings().register_forward_hook(insert_prefix)
        try:
            if self.use_attention_mask:
                return encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (N, T, D)
            return encoder(input_ids=ids).last_hidden_state  # (N, T, D)
        finally:
            if hook is not None:
                hook.remove()

    def token_embeddings(self, text_encoder: Any = None) -> "torch.Tensor":
        """The encoder's input token-embedding matrix ``(V, E)``."""
        encoder = self.text_encoder if text_encoder is None else text_encoder
        return encoder.get_input_embeddings().weight

    # ---------------------------------------------------------------- UNet
    def predict_noise(self, x_t: "torch.Tensor", timesteps: "torch.Tensor", states: "torch.Tensor",
                      unet: Any = None) -> "torch.Tensor":
        """eps_theta(x_t, t, c): x_t ``(N, C, h, w)``, timesteps ``(N,)``, states ``(N, T, D)``."""
        model = self.unet if unet is None else unet
        return model(x_t, timesteps, encoder_hidden_states=states).sample  # (N, C, h, w)

    def initial_noise(self, seeds: list[int]) -> "torch.Tensor":
        """Per-seed start noise ``(N, C, h, w)``: row i depends on seeds[i] only."""
        import torch

        shape = (self.latent_channels, self.latent_size, self.latent_size)
        rows = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds]
        return torch.stack(rows).to(self.device)

    def add_noise(self, z0: "torch.Tensor", generator: "torch.Generator | None" = None,
                  t_range: tuple[int, int] | None = None) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """DDPM forward process: ``(x_t, eps, t)`` for clean latents z0 ``(N, C, h, w)``, t uniform."""
        import torch

        n_train = int(self.noise_scheduler.config.num_train_timesteps)
        lo, hi = t_range or (0, n_train)
        t = torch.randint(lo, hi, (z0.shape[0],), generator=generator).to(self.device)
        eps = torch.randn(z0.shape, generator=generator).to(self.device)
        return self.noise_scheduler.add_noise(z0, eps, t), eps, t

    # ---------------------------------------------------------------- images <-> latents
    def images_to_latents(self, images: "np.ndarray") -> "torch.Tensor":
        """uint8 ``(N, H, W, 3)`` -> clean latents z0 ``(N, C, h, w)`` (pixels in [-1, 1] without VAE)."""
        import torch

        x = from_uint8(images, self.device)  # (N, 3, H, W) in [-1, 1]
        if x.shape[-1] != self.image_size:
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                                antialias=True, align_corners=False)
        if self.vae is None:
            return x
        with torch.no_grad():
            return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor

    def latents_to_images(self, z: "torch.Tensor") -> "np.ndarray":
        """Latents ``(N, C, h, w)`` -> uint8 images ``(N, H, W, 3)``."""
        import torch

        with torch.no_grad():
            x = z if self.vae is None else self.vae.decode(z / self.vae.config.scaling_factor).sample
        return to_uint8(x)

    # ---------------------------------------------------------------- sampling
    def sample_latents(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                       guidance: float | None = None, unet: Any = None, text_encoder: Any = None,
                       callback: Callable[[int, int], None] | None = None,
                       stop_after: int | None = None,
                       prefix: "torch.Tensor | None" = None,
                       trajectory: list | None = None) -> tuple["torch.Tensor", int]:
        """Classifier-free guided sampling (Ho & Salimans, 2022); returns ``(z, t)``.

        With ``stop_after=k`` the loop stops after k of ``steps`` steps and returns the noisy
        latents with the timestep t they are at (ESD samples x_t this way); otherwise z is the
        clean result (t = 0). The empty prompt is the unconditional input, as in SD. ``prefix``:
        input embeddings inserted before every prompt (see :meth:`encode`; attacks). A
        ``trajectory`` list receives ``(t, z_t)`` before every step (ESD reuses them).
        """
        import torch

        steps = self.default_steps if steps is None else int(steps)
        guidance = self.default_guidance if guidance is None else float(guidance)
        if isinstance(prompts, str) or not prompts:
            raise ValueError("prompts must be a non-empty list of strings")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        if not 1 <= steps <= 1000:
            raise ValueError(f"steps must be between 1 and 1000, got {steps}")
        if not 0.0 <= guidance <= 50.0:
            raise ValueError(f"guidance must be between 0 and 50, got {guidance}")
        if stop_after is not None and not 0 <= stop_after <= steps:
            raise ValueError(f"stop_after must be between 0 and {steps}, got {stop_after}")
        model = self.unet if unet is None else unet
        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        use_cfg = guidance != 1.0
        with torch.no_grad():
            cond = self.encode(list(prompts), text_encoder, prefix)  # (N, T, D)
            if use_cfg:
                uncond = self.encode([""], text_encoder).expand_as(cond)  # (N, T, D)
                states = torch.cat([uncond, cond])  # (2N, T, D)
            else:
                states = cond
            z = self.initial_noise(seeds) * scheduler.init_noise_sigma  # (N, C, h, w)
            return guided_denoise(model, scheduler, z, states, guidance, stop_after, callback, trajectory)

    def generate(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                 guidance: float | None = None, unet: Any = None, text_encoder: Any = None,
                 callback: Callable[[int, int], None] | None = None,
                 prefix: "torch.Tensor | None" = None) -> "np.ndarray":
        """uint8 images ``(N, H, W, 3)`` for prompts[i] from seeds[i], in fixed-size batches.

        A frozen base model caches its generations (the same request is answered from memory).
        """
        import numpy as np

        key = (tuple(prompts), tuple(int(s) for s in seeds), steps, guidance)
        cacheable = self.frozen and unet is None and text_encoder is None and prefix is None
        if cacheable:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
        chunks = []
        n_batches = (len(prompts) + GENERATION_BATCH - 1) // GENERATION_BATCH
        for b in range(n_batches):
            part = slice(b * GENERATION_BATCH, (b + 1) * GENERATION_BATCH)
            inner = None if callback is None else (lambda i, n, b=b: callback(b * n + i, n_batches * n))
            z, _ = self.sample_latents(list(prompts[part]), list(seeds[part]), steps, guidance, unet,
                                       text_encoder, inner, prefix=prefix)
            chunks.append(self.latents_to_images(z))
        images = np.concatenate(chunks)
        if cacheable:
            with self._lock:
                if len(self._cache) > 64:
                    self._cache.clear()
                self._cache[key] = images
        return images


@contextlib.contextmanager
def trainable(module: Any, names: Callable[[str], bool]) -> Iterator[list[Any]]:
    """Enable grad on the parameters whose name passes ``names``; every parameter is frozen after."""
    params = []
    for n, p in module.named_parameters():
        p.requires_grad_(bool(names(n)))
        if p.requires_grad:
            params.append(p)
    try:
        yield params
    finally:
        module.requires_grad_(False)
