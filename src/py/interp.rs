//! Starting the embedded interpreter: the right CPython, the project's venv, the runtime modules.
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CString;

/// The only CPython this build supports (the frame layout in `frame311.rs`).
pub const PYTHON_MINOR: &str = "3.11";

/// The runtime's Python half, the package `python/microlambda_rt/`, embedded file by file so a worker needs
/// nothing on disk but CPython and the venv. Every `.py` file of the package is listed (a test checks).
const RUNTIME_PACKAGE: &str = "microlambda_rt";
const RUNTIME_FILES: &[(&str, &str)] = &[
    ("__init__.py", include_str!("../../python/microlambda_rt/__init__.py")),
    ("base.py", include_str!("../../python/microlambda_rt/base.py")),
    ("ops.py", include_str!("../../python/microlambda_rt/ops.py")),
    ("analysis.py", include_str!("../../python/microlambda_rt/analysis.py")),
    ("tables.py", include_str!("../../python/microlambda_rt/tables.py")),
    ("morph.py", include_str!("../../python/microlambda_rt/morph.py")),
    ("trampolines.py", include_str!("../../python/microlambda_rt/trampolines.py")),
    ("identity.py", include_str!("../../python/microlambda_rt/identity.py")),
    ("views.py", include_str!("../../python/microlambda_rt/views.py")),
    ("cyfields.py", include_str!("../../python/microlambda_rt/cyfields.py")),
    ("refs.py", include_str!("../../python/microlambda_rt/refs.py")),
    ("files.py", include_str!("../../python/microlambda_rt/files.py")),
    ("state.py", include_str!("../../python/microlambda_rt/state.py")),
    ("pickler.py", include_str!("../../python/microlambda_rt/pickler.py")),
    ("capture.py", include_str!("../../python/microlambda_rt/capture.py")),
    ("restore.py", include_str!("../../python/microlambda_rt/restore.py")),
    ("job.py", include_str!("../../python/microlambda_rt/job.py")),
];

/// Serves the embedded package to the import system, so it is a real package (`__path__`, `__spec__`,
/// submodules in `sys.modules`) that `pickle` imports by name like any other. Source lines are not shown in
/// tracebacks (the file names are `<...>`), as before.
const EMBEDDED_IMPORTER: &std::ffi::CStr = c"
import sys
from importlib.machinery import ModuleSpec

class EmbeddedImporter:
    def __init__(self, modules):
        self.modules = modules  # module name -> (source, is a package, file name)

    def find_spec(self, name, path=None, target=None):
        m = self.modules.get(name)
        return None if m is None else ModuleSpec(name, self, origin=m[2], is_package=m[1])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source, _, filename = self.modules[module.__spec__.name]
        exec(compile(source, filename, 'exec', dont_inherit=True), module.__dict__)

sys.meta_path.insert(0, EmbeddedImporter(modules))
";

/// The embedded files as `{module name: (source, is a package, file name)}` for [`EMBEDDED_IMPORTER`].
fn runtime_modules(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let modules = pyo3::types::PyDict::new(py);
    for (file, source) in RUNTIME_FILES {
        let stem = file.strip_suffix(".py").expect("a .py file");
        let is_package = stem == "__init__";
        let name = if is_package { RUNTIME_PACKAGE.to_string() } else { format!("{RUNTIME_PACKAGE}.{stem}") };
        modules.set_item(name, (source, is_package, format!("<{RUNTIME_PACKAGE}/{file}>")))?;
    }
    Ok(modules)
}

pub struct Interp {
    pub interp: *mut ffi::PyInterpreterState,
    pub version: String,
    /// Preloaded modules that did not import (each logged on stderr).
    pub failed_imports: Vec<String>,
}

/// Initialise CPython on this (the main) thread, check it, load the runtime and import `preload`. A preloaded
/// module that does not import is logged and left out (it is in `failed_imports`): the modules are a
/// warm-up, and a zygote whose set names a module that broke since (or never imports here) must still come up;
/// a job that needs it meets the error itself. Releases the GIL on return.
pub fn start(python: Option<&str>, preload: &[String]) -> Result<Interp, String> {
    // SAFETY: called once, on the main thread, before any other Python API use.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        if let Some(exe) = crate::config::python_executable_given(python) {
            use std::os::unix::ffi::OsStrExt;
            let c = CString::new(exe.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
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
        native.add_function(wrap_pyfunction!(super::codeflow::code_flow, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::gen_state, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::gen_parts, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::set_gen_exc, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::self_check, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::token_used, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::method_parts, &native)?)?;
        native.add_function(wrap_pyfunction!(super::frame311::object_parts, &native)?)?;
        native.add_function(wrap_pyfunction!(super::heldbyc::held_by_c, &native)?)?;
        native.add_function(wrap_pyfunction!(super::heldbyc::tracked_at, &native)?)?;
        native.add_function(wrap_pyfunction!(super::heldbyc::young_count, &native)?)?;
        native.add_function(wrap_pyfunction!(super::numbers::number_ids, &native)?)?;
        native.add_function(wrap_pyfunction!(super::numbers::number_loads, &native)?)?;
        native.add_function(wrap_pyfunction!(super::numbers::id_targets, &native)?)?;
        native.add_function(wrap_pyfunction!(super::numbers::index_strings, &native)?)?;
        native.add_function(wrap_pyfunction!(super::libstate::index_containers, &native)?)?;
        native.add_function(wrap_pyfunction!(super::libstate::index_classes, &native)?)?;
        native.add_function(wrap_pyfunction!(super::libstate::index_paths, &native)?)?;
        native.add_function(wrap_pyfunction!(super::libstate::index_instances, &native)?)?;
        native.add_function(wrap_pyfunction!(super::libstate::container_ref, &native)?)?;
        native.add_function(wrap_pyfunction!(super::statics::index_static, &native)?)?;
        native.add_function(wrap_pyfunction!(super::statics::index_input, &native)?)?;
        native.add_function(wrap_pyfunction!(super::statics::forget_input, &native)?)?;
        native.add_function(wrap_pyfunction!(super::session::session_reply, &native)?)?;
        native.add_function(wrap_pyfunction!(super::session::session_request, &native)?)?;
        native.add_function(wrap_pyfunction!(super::trigger::warm_checkpoint, &native)?)?;
        let modules = sys.getattr("modules")?;
        modules.set_item("_mlrs", &native)?;
        let boot = pyo3::types::PyDict::new(py);
        boot.set_item("modules", runtime_modules(py)?)?;
        py.run(EMBEDDED_IMPORTER, Some(&boot), None)?;
        let rt = py.import(RUNTIME_PACKAGE)?;
        // The layout check runs from a Python frame, as frames are read during checkpoints.
        py.run(c"import _mlrs\ndef _probe():\n    _mlrs.self_check()\n_probe()\n", None, None)?;
        let mut failed_imports = Vec::new();
        for m in preload.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
            if let Err(e) = py.import(m) {
                eprintln!("microlambda: preloaded module {m:?} does not import: {e}");
                failed_imports.push(m.to_string());
            }
        }
        // A job that crashes the interpreter leaves a Python traceback on stderr.
        py.import("faulthandler")?.call_method0("enable")?;
        rt.getattr("warm")?.call0()?;
        // SAFETY: GIL held; the main interpreter lives as long as the process.
        let interp = unsafe { ffi::PyInterpreterState_Main() };
        Ok(Interp { interp, version, failed_imports })
    });
    let r = r.map_err(|e| Python::attach(|py| format!("{}", e.value(py))));
    // Release the GIL the initialisation left us holding; jobs re-attach.
    // SAFETY: this thread holds the GIL after Py_InitializeFromConfig and attach returned.
    unsafe {
        ffi::PyEval_SaveThread();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::RUNTIME_FILES;

    #[test]
    fn every_file_of_the_runtime_package_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/microlambda_rt");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = RUNTIME_FILES.iter().map(|(f, _)| f.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "python/microlambda_rt/ and RUNTIME_FILES in src/py/interp.rs differ");
    }
}
