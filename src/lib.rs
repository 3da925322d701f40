//! unitmatch: find which units (channels) of one neural network correspond to which units of
//! another. The modules follow the pipeline:
//! data -> model -> train -> unroll -> stats -> similarity -> (matching, null, cka) -> sweep
//! -> (render, report).

pub mod causal;
pub mod checkpoint;
pub mod cka;
pub mod classifier;
pub mod compare;
pub mod data;
pub mod demo;
pub mod device;
pub mod evaluate;
pub mod fsutil;
pub mod intervene;
pub mod matching;
pub mod model;
pub mod null;
pub mod prune;
pub mod quality;
pub mod render;
pub mod report;
pub mod similarity;
pub mod stats;
pub mod sweep;
pub mod train;
pub mod unroll;
