//! Every size our kernels were tuned with, in one place, each with what chose it. Figures
//! are in docs/performance.md; "not swept" says that a value was set by reasoning alone and
//! is a candidate for a sweep.

/// Output pixels per tile of the im2col convolution: large enough for the gemm
/// micro-kernels, small enough that a tile's columns stay in the caches and the tiles
/// spread over the cores. Performance.md, first session ("The convolution kernel tiles its
/// columns"): with the fused ops, the training step's peak memory went from 561 MB to
/// 439 MB; the tile size itself not swept.
pub const CONV_TILE_COLUMNS: usize = 512;

/// The fewest input and output channels [`super::winograd`]'s F(2x2, 3x3) takes, and the
/// fewest input channels of [`super::winograd6`]: F(2x2, 3x3)'s transforms cost about
/// `16 (Ci + Co)` additions per block against `20 Ci Co` multiplications saved, those of
/// F(2x2, 5x5) and F(4x4, 3x3) about `36 (Ci + Co)` against `64 Ci Co` or more. Not swept
/// below 32 (the model's Winograd convolutions have 32 to 192 channels on the input side).
pub const WINOGRAD_MIN_CHANNELS: usize = 32;

/// The fewest output channels [`super::winograd6`] takes (with at least
/// [`WINOGRAD_MIN_CHANNELS`] input channels): few output channels leave its products
/// `tiles x Ci x Co` long enough, as `Ci` is their inner dimension, and its output
/// transform short. Measured on one shape alone (performance.md, seventh session): the
/// affine coupling's last convolution (16 x 128 -> 12 on 16x16 maps) went 1.10 -> 0.77 ms
/// forward and 3.69 -> 2.63 ms forward + backward; the reverse, few input channels
/// (16 x 6 -> 128), was slower as F(4x4, 3x3) (0.56 -> 0.86 ms forward), so the input side
/// keeps [`WINOGRAD_MIN_CHANNELS`]. No other convolution of the models has 8 to 31 output
/// channels and 32 or more input ones where [`super::winograd6`] applies (the mAR prior's
/// have 128, its conditioning network's last 4). Not swept between 8 and 32.
pub const WINOGRAD6_MIN_OUT_CHANNELS: usize = 8;

/// The smallest map side of the Winograd path: on smaller maps its 4x4 input patches
/// overlap too much (a 4x4 map has 16 pixels, its four patches 64 values). Performance.md,
/// fifth session: on the prior's 4x4 top level (768 x 32 x 4x4 -> 128) it was slower than
/// im2col, 12.5 against 8.2 ms forward; on the gated convolution at 8x8 (16 x 192 x 8x8 ->
/// 96) faster, 2.67 against 3.30 ms.
pub const WINOGRAD_MIN_SIDE: usize = 8;

/// Output blocks per Winograd chunk at least (chunks hold whole samples): enough for wide
/// products, few enough that a chunk's transformed input and products stay in the caches
/// on the model's maps (16x16 and smaller). Not swept.
pub const WINOGRAD_BLOCKS_PER_CHUNK: usize = 64;

/// Tiles per chunk of [`super::winograd6`] at most, unless one sample has more (chunks
/// hold whole samples): the 36 products of a chunk have this many rows. 32 in place of
/// 128 keeps a chunk's products (`36 · 32 · Co` values) in L2 up to `Co = 256`: on an Intel
/// Xeon with 2 MiB of L2 it was as fast or faster on the prior's shapes, and cut the share
/// of the transforms on the affine coupling's last convolution (docs/performance.md, tenth
/// session).
pub const WINOGRAD6_TILES_PER_CHUNK: usize = 32;

/// The fewest tiles (output blocks, over the batch) over which [`super::winograd6`] takes a
/// kernel transformed for one call (the forward, the input gradient, the weight gradient),
/// unless it holds at most [`WINOGRAD6_ONCE_CACHED_VALUES`]: below, transforming the kernel
/// and moving its `36 Ci Co` values through memory for few rows of products cost more
/// than im2col saves. Measured on 4x4 maps (one tile per sample; performance.md, eighth
/// session), Winograd against im2col, the transform included: at 16 samples, 16 x 192 ->
/// 96 forward 0.92 / 0.79 ms, weight gradient 2.26 / 1.34 ms; 16 x 96 -> 1176 forward
/// 6.9 / 3.9 ms, weight gradient 14.9 / 7.6 ms; at 32 samples, forward 1.36 / 2.31 and
/// 7.8 / 9.7 ms. Kernels used many times (a ConvLSTM layer's steps, the cache's) take
/// Winograd over any number of tiles. Only 16 and 32 tiles were measured; on 16x16 maps
/// (16 tiles a sample) this touches batch 1 alone, where 3x3 kernels then take F(2x2, 3x3)
/// or im2col, not measured.
pub const WINOGRAD6_ONCE_MIN_TILES: usize = 32;

/// The most values (`36 Ci Co`) of a kernel that [`super::winograd6`] transforms for one
/// call over fewer than [`WINOGRAD6_ONCE_MIN_TILES`] tiles: 1 MiB, which stays in the
/// caches. The affine coupling's last convolution at level 3 (16 x 128 -> 24 on 4x4 maps,
/// 110 K values) was as fast as im2col forward (0.24 / 0.25 ms) and faster for the weight
/// gradient (0.28 / 0.40 ms); the MixLogCDF gated convolution's 663 K values were not.
/// Not swept between.
pub const WINOGRAD6_ONCE_CACHED_VALUES: usize = 1 << 18;

/// The largest grid side of [`super::winograd6`]'s 5x5 kernels: a chunk holds at least one
/// sample, whose transformed input and products take `36 (Ci + Co)` values per 2x2 block
/// (5.9 MB on a 32x32 grid with 32 and 128 channels). Set by that memory, not measured.
pub const WINOGRAD6_MAX_SIDE: usize = 32;

/// Weights remembered as seen once by [`super::kernel_cache`] (their kernels are kept from
/// the second use on): more than the distinct weights one call runs through, or a weight
/// used once per call is forgotten before its second use and never kept. The affine L3 K8
/// C128 model's sampling runs through 34 (the prior's 9 step kernels and 9 first-step
/// ones, the couplings' 16 output convolutions on 4x4 and 16x16 maps); sixth session: 16
/// (shared with the kernels kept), so that the couplings' kernels were made anew at every
/// call (2 % of sampling in this session's profile). Not swept.
pub const WEIGHTS_SEEN_ONCE: usize = 64;

/// The values all kernels kept by [`super::kernel_cache`] may take together (`36 Ci Co`
/// each, their weights adding `r² / 36` of that): 8 Mi values (32 MiB), the least recently
/// used dropped to make room. The affine L3 K8 C128 model's sampling keeps 6.2 M values:
/// the mAR prior's step kernels (`9 x 36 x 64 x 128`, 2.7 M with 32 hidden channels), its
/// first steps' (`9 x 36 x 32 x 128`, 1.3 M) and the couplings' output convolutions on 4x4
/// and 16x16 maps (`8 x 36 x 128 x 48` and `8 x 36 x 128 x 12`, 2.2 M). Not swept.
pub const CACHED_KERNEL_VALUES: usize = 8 << 20;

/// The largest kernel [`super::kernel_cache`] keeps, in values: 1 Mi (4 MiB), over three
/// times the prior's largest (`36 x 64 x 128` with 32 hidden channels). The MixLogCDF
/// coupling networks' output convolutions on 4x4 maps (up to `36 x 96 x 2352` values, their
/// weight-normalised weights made anew at every call) are not kept, rather than push the
/// prior's kernels out (at batch 16 they take im2col: [`WINOGRAD6_ONCE_MIN_TILES`]). Not
/// swept.
pub const CACHED_KERNEL_LARGEST: usize = 1 << 20;

/// Rows per parallel task of the softmax (forward and backward) and of the layer norm's
/// forward: enough work per task to outweigh scheduling. Not swept.
pub const ROWS_PER_TASK: usize = 64;

/// Positions per block of the mixture's log-densities and of the bisection, and the
/// bisection's unit of parallel work: every component's terms of a block stay in cache.
/// Not swept.
pub const MIXTURE_BLOCK: usize = 64;

/// Values per parallel task of the dropout (whole runs of one mask's elements). Not swept.
pub const DROPOUT_CHUNK: usize = 16384;

/// The fewest multiply-adds for which a convolution done as one tile lets the gemm thread
/// itself (below, the threads' start-up costs more than it saves). Not swept.
pub const GEMM_THREADING_MIN_FLOPS: usize = 1 << 22;
