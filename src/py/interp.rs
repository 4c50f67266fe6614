//! Starting the embedded interpreter: the right CPython, the project's venv, the runtime modules.
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CString;

/// The only CPython this build supports (the frame layout in `frame311.rs`).
pub const PYTHON_MINOR: &str = "3.11";

/// The runtime's Python half, embedded so a worker needs nothing on disk but CPython and the venv.
const RUNTIME_SOURCE: &str = include_str!("../../python/mlrt.py");

pub struct Interp {
    pub interp: *mut ffi::PyInterpreterState,
    pub version: String,
}

/// The venv's interpreter: the one the host names (its `MICROLAMBDA_PYTHON`), else the one this binary was
/// built against.
fn python_executable(given: Option<&str>) -> Option<String> {
    if let Some(p) = given.filter(|p| !p.is_empty()) {
        return Some(p.to_string());
    }
    let built = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    std::path::Path::new(built).exists().then(|| built.to_string())
}

/// Initialise CPython on this (the main) thread, check it, and load the runtime. Releases the GIL on return.
pub fn start(python: Option<&str>, preload: &[String]) -> Result<Interp, String> {
    // SAFETY: called once, on the main thread, before any other Python API use.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        if let Some(exe) = python_executable(python) {
            let c = CString::new(exe).map_err(|e| e.to_string())?;
            let st = ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, c.as_ptr());
            if ffi::PyStatus_Exception(st) != 0 {
                ffi::PyConfig_Clear(&mut config);
                return Err("cannot set the interpreter's executable".into());
            }
        }
        let st = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(st) != 0 {
            return Err("CPython failed to initialise".into());
        }
    }
    let r = Python::attach(|py| -> PyResult<Interp> {
        let sys = py.import("sys")?;
        let vi: (u8, u8) = sys
            .getattr("version_info")?
            .get_item(0)?
            .extract::<u8>()
            .and_then(|a| Ok((a, sys.getattr("version_info")?.get_item(1)?.extract::<u8>()?)))?;
        let version: String = sys.getattr("version")?.extract()?;
        if format!("{}.{}", vi.0, vi.1) != PYTHON_MINOR {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "microlambda checkpoints CPython {PYTHON_MINOR} only; this interpreter is {version}"
            )));
        }
        if sys.hasattr("gettotalrefcount")? {
            return Err(pyo3::exceptions::PyRuntimeError::new_err("debug builds of CPython are not supported"));
        }
        let native = PyModule::new(py, "_mlrs")?;
        native.add_class::<super::frame311::RawFrame>()?;
        native.add_function(wrap_pyfunction!(super::frame311::gen_state, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::gen_frame, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::gen_exc, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::set_gen_exc, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::self_check, &native)?)?;
        let modules = sys.getattr("modules")?;
        modules.set_item("_mlrs", &native)?;
        let src = CString::new(RUNTIME_SOURCE).expect("no NUL in runtime source");
        let rt = PyModule::from_code(py, &src, c"<microlambda_rt>", c"microlambda_rt")?;
        modules.set_item("microlambda_rt", &rt)?;
        // The layout check runs from a Python frame, as frames are read during checkpoints.
        py.run(c"import _mlrs\ndef _probe():\n    _mlrs.self_check()\n_probe()\n", None, None)?;
        for m in preload.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
            py.import(m)?;
        }
        // A job that crashes the interpreter leaves a Python traceback on stderr.
        py.import("faulthandler")?.call_method0("enable")?;
        rt.getattr("warm")?.call0()?;
        // SAFETY: GIL held; the main interpreter lives as long as the process.
        let interp = unsafe { ffi::PyInterpreterState_Main() };
        Ok(Interp { interp, version })
    });
    let r = r.map_err(|e| Python::attach(|py| format!("{}", e.value(py))));
    // Release the GIL the initialisation left us holding; jobs re-attach.
    // SAFETY: this thread holds the GIL after Py_InitializeFromConfig and attach returned.
    unsafe {
        ffi::PyEval_SaveThread();
    }
    r
}
