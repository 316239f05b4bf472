"""Latent coders: what turns a model's latents into a file's streams and back, per model kind.

A weights file declares its model kind; the kind picks the network class and the latent coder,
so that a new entropy model (a context model, say) is added beside the existing ones and files of
every shipped kind keep decoding. A coder offers, symmetrically:

- ``frozen_tables(model)``: the integer tables it needs (named by ``frozen_table_names``), built
  once at export into the weights file (torch), and read from a weights bundle
  (``vaecodec.model.bundle``) by the coder's constructor, which needs no torch;
- ``prepare(y, z)``: the quality-independent half of encoding (the hyper stream, the entropy
  parameters of the hyper-latent), reused across qualities by rate control;
- ``encode(prepared, level_units)``: the latent stream at an integer rate level;
- ``decode(hyper_stream, latent_stream, latent_size, level_units)``: the decoded latent (numpy).

and, for looking inside files and the model (``vaecodec.inspection``, ``vaecodec.generative``):

- ``symbol_information(hyper_stream, latent_stream, latent_size, level_units)``: what ``decode``
  reads, with the bits each symbol cost under its coding table (a dict of arrays: "z",
  "hyper_bits", "symbols", "means", "scale_indexes", "latent_bits", "gains");
- ``sample(latent_size, level_units, rng)``: a latent drawn from the model's prior, decoded
  as ``decode`` would decode it.
"""
