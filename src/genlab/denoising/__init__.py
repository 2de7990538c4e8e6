"""One denoiser and sampler core for every iterative family (flow matching, DDPM, EDM):
noise processes (`processes`), what a network predicts (`denoisers`), time grids (`grids`)
and samplers (`samplers`), after EDM (Karras et al. 2022) and k-diffusion."""
