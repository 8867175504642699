//! What a paper's table needs beyond bits/dim: samples at scale in the formats FID tools
//! read, and FID.

mod fid;
mod samples;
