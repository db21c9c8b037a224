//! Launches the CUDA kernels of `kernels.cu` (compiled to PTX by build.rs) for the custom
//! ops of `ops.rs`. Inputs must be contiguous; the attention mask is f32 (the master
//! dtype) whatever the dtype of the scores, which may be f32 or bf16.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda::{CudaDType, CudaDevice, CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result, Shape, WithDType, bail};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/train_kernels.ptx"));
const MODULE: &str = "mathlake-train";

/// The element types the kernels are instantiated for.
trait Float: CudaDType + DeviceRepr + WithDType {}
impl<T: CudaDType + DeviceRepr + WithDType> Float for T {}

/// Runs `$body` with `$x` bound to the storage's f32 or bf16 slice.
macro_rules! float_slice {
    ($storage:expr, $op:expr, |$x:ident| $body:expr) => {
        match &$storage.slice {
            CudaStorageSlice::F32($x) => $body,
            CudaStorageSlice::BF16($x) => $body,
            _ => bail!("{} runs on CUDA in f32 or bf16, not {:?}", $op, $storage.dtype()),
        }
    };
}

/// The contiguous part of `slice` that `layout` describes.
fn view<'a, T>(slice: &'a CudaSlice<T>, layout: &Layout, op: &str) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(slice.slice(start..end)),
        None => bail!("{op} needs contiguous inputs"),
    }
}

/// One block per row of `width` values: enough threads for about 8 values each.
fn rows_config(rows: usize, width: usize) -> Result<LaunchConfig> {
    let Ok(rows) = u32::try_from(rows) else { bail!("{rows} rows are more than one CUDA grid holds") };
    let threads = width.div_ceil(8).next_multiple_of(32).clamp(32, 1024) as u32;
    Ok(LaunchConfig { grid_dim: (rows, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 })
}

fn size(n: usize) -> Result<u32> {
    match u32::try_from(n) {
        Ok(n) => Ok(n),
        Err(_) => bail!("a dimension of {n} is beyond the CUDA kernels' 32-bit sizes"),
    }
}

/// `softmax(scale * scores + mask)` for scores `[b, h, t, s]` and mask `[b, 1, t, s]`.
pub fn attention_softmax(
    scale: f64,
    scores: &CudaStorage,
    scores_layout: &Layout,
    mask: &CudaStorage,
    mask_layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let op = "attention-softmax";
    let scale = scale as f32;
    let dims = scores_layout.dims();
    let mask = view(mask.as_cuda_slice::<f32>()?, mask_layout, op)?;
    let (heads, t, s) = (size(dims[1])?, size(dims[2])?, size(dims[3])?);
    let rows = scores_layout.shape().elem_count() / dims[3];
    let dev = &scores.device;
    let out = float_slice!(scores, op, |x| {
        let x = view(x, scores_layout, op)?;
        let out = alloc(dev, &x, x.len())?;
        let func = dev.get_or_load_custom_func(&kernel_name(&x, "attention_softmax"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x).arg(&mask).arg(&out).arg(&heads).arg(&t).arg(&s).arg(&scale);
        // SAFETY: the arguments match the kernel's signature in kernels.cu.
        unsafe { launch.launch(rows_config(rows, dims[3])?) }.w()?;
        wrap(out, dev)
    });
    Ok((out, scores_layout.shape().clone()))
}

/// `scale * y * (g - sum(g * y))` per row, for the softmax `y` and its gradient `g`.
pub fn softmax_grad(
    scale: f64,
    y: &CudaStorage,
    y_layout: &Layout,
    g: &CudaStorage,
    g_layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let op = "attention-softmax-grad";
    let scale = scale as f32;
    let width = *y_layout.dims().last().unwrap_or(&1);
    let s = size(width)?;
    let rows = y_layout.shape().elem_count() / width.max(1);
    let dev = &y.device;
    let out = float_slice!(y, op, |y| {
        let y = view(y, y_layout, op)?;
        let g = view(same_dtype(&y, g)?, g_layout, op)?;
        let out = alloc(dev, &y, y.len())?;
        let func = dev.get_or_load_custom_func(&kernel_name(&y, "softmax_grad"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&y).arg(&g).arg(&out).arg(&s).arg(&scale);
        // SAFETY: the arguments match the kernel's signature in kernels.cu.
        unsafe { launch.launch(rows_config(rows, width)?) }.w()?;
        wrap(out, dev)
    });
    Ok((out, y_layout.shape().clone()))
}

/// The negative log-likelihood `[n]` of each row of logits `[n, vocab]` at its target.
pub fn cross_entropy(
    logits: &CudaStorage,
    logits_layout: &Layout,
    targets: &CudaStorage,
    targets_layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let op = "cross-entropy";
    let (n, vocab) = (logits_layout.dims()[0], logits_layout.dims()[1]);
    let targets = view(targets.as_cuda_slice::<u32>()?, targets_layout, op)?;
    let vocab32 = size(vocab)?;
    let dev = &logits.device;
    let out = float_slice!(logits, op, |x| {
        let x = view(x, logits_layout, op)?;
        let out = alloc(dev, &x, n)?;
        let func = dev.get_or_load_custom_func(&kernel_name(&x, "cross_entropy"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x).arg(&targets).arg(&out).arg(&vocab32);
        // SAFETY: the arguments match the kernel's signature in kernels.cu.
        unsafe { launch.launch(rows_config(n, vocab)?) }.w()?;
        wrap(out, dev)
    });
    Ok((out, Shape::from(n)))
}

/// `(softmax(logits) - onehot(target)) * g` per row, zeros where `g` is 0.
pub fn cross_entropy_grad(
    logits: &CudaStorage,
    logits_layout: &Layout,
    targets: &CudaStorage,
    targets_layout: &Layout,
    g: &CudaStorage,
    g_layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let op = "cross-entropy-grad";
    let (n, vocab) = (logits_layout.dims()[0], logits_layout.dims()[1]);
    let targets = view(targets.as_cuda_slice::<u32>()?, targets_layout, op)?;
    let vocab32 = size(vocab)?;
    let dev = &logits.device;
    let out = float_slice!(logits, op, |x| {
        let x = view(x, logits_layout, op)?;
        let g = view(same_dtype(&x, g)?, g_layout, op)?;
        let out = alloc(dev, &x, x.len())?;
        let func = dev.get_or_load_custom_func(&kernel_name(&x, "cross_entropy_grad"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x).arg(&targets).arg(&g).arg(&out).arg(&vocab32);
        // SAFETY: the arguments match the kernel's signature in kernels.cu.
        unsafe { launch.launch(rows_config(n, vocab)?) }.w()?;
        wrap(out, dev)
    });
    Ok((out, logits_layout.shape().clone()))
}

/// The kernel of `op` for the element type of `like`.
fn kernel_name<T: Float>(_like: &CudaView<'_, T>, op: &str) -> String {
    format!("{op}_{}", T::DTYPE.as_str())
}

/// An output of `len` elements of `like`'s type, left uninitialised: every kernel in
/// `kernels.cu` writes each element of its output.
fn alloc<T: Float>(dev: &CudaDevice, _like: &CudaView<'_, T>, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the launch that follows writes all `len` elements before anything reads them.
    unsafe { dev.alloc(len) }
}

/// The slice of `other` in the element type of `like`.
fn same_dtype<'a, T: Float>(_: &CudaView<'_, T>, other: &'a CudaStorage) -> Result<&'a CudaSlice<T>> {
    T::as_cuda_slice(other)
}

fn wrap<T: Float>(slice: CudaSlice<T>, dev: &CudaDevice) -> CudaStorage {
    T::wrap_cuda_slice(slice, dev.clone())
}
