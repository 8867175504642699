//! Every size our kernels were tuned with, in one place, each with what chose it. Figures
//! are in docs/performance.md; "not swept" says that a value was set by reasoning alone and
//! is a candidate for a sweep.

/// Output pixels per tile of the im2col convolution: large enough for the gemm
/// micro-kernels, small enough that a tile's columns stay in the caches and the tiles
/// spread over the cores. Performance.md, first session ("The convolution kernel tiles its
/// columns"): with the fused ops, the training step's peak memory went from 561 MB to
/// 439 MB; the tile size itself not swept.
pub const CONV_TILE_COLUMNS: usize = 512;

/// The fewest input and output channels the Winograd paths take: F(2x2, 3x3)'s transforms
/// cost about `16 (Ci + Co)` additions per block against `20 Ci Co` multiplications saved,
/// those of F(2x2, 5x5) and F(4x4, 3x3) about `36 (Ci + Co)` against `64 Ci Co` or more.
/// Not swept below 32 (the model's Winograd convolutions have 32 to 192 channels, the
/// affine coupling's 6 or 12 on one side).
pub const WINOGRAD_MIN_CHANNELS: usize = 32;

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
/// hold whole samples): the 36 products of a chunk have this many rows. Not swept.
pub const WINOGRAD6_TILES_PER_CHUNK: usize = 128;

/// The largest grid side of [`super::winograd6`]'s 5x5 kernels: a chunk holds at least one
/// sample, whose transformed input and products take `36 (Ci + Co)` values per 2x2 block
/// (5.9 MB on a 32x32 grid with 32 and 128 channels). Set by that memory, not measured.
pub const WINOGRAD6_MAX_SIDE: usize = 32;

/// Winograd kernels kept for the forwards without autodiff that reuse a weight
/// ([`super::kernel_cache`]), and weights remembered as seen once: the mAR prior's sampling
/// steps through up to three ConvLSTM layers per level. Not swept.
pub const CACHED_KERNELS: usize = 16;

/// The largest kernel [`super::kernel_cache`] keeps, in values (`36 Ci Co`): 1 Mi (4 MiB),
/// over three times the prior's largest (`36 x 64 x 128` with 32 hidden channels); the
/// coupling networks' output convolutions on 4x4 maps (up to `36 x 96 x 2352` values) are
/// transformed per call. With [`CACHED_KERNELS`], at most about 110 MiB of kernels and
/// their weights; the prior's take about 30 MB. Not swept.
pub const CACHED_KERNEL_VALUES: usize = 1 << 20;

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
