//! `scripts/check-python.sh`, the first step of set-up, on real CPython interpreters that each lack one thing
//! microlambda needs: it must refuse them and print the exact fix, and pass the venv's own interpreter.
//!
//! The interpreters are the venv's CPython 3.11 run through a wrapper that takes one piece away as a machine
//! without it would: a sysconfig whose library directories hold no `libpython3.11.so` (pyenv's default static
//! build, or Debian without `libpython3.11-dev`), an `ensurepip` that cannot be imported (Debian without
//! `python3.11-venv`, which ships it), and an interpreter that says it is another version.
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn venv_python() -> PathBuf {
    PathBuf::from(ROOT).join(".venv/bin/python")
}

/// Run the check on `python`; its exit code and stderr.
fn check(python: &Path) -> (i32, String) {
    let out = Command::new(PathBuf::from(ROOT).join("scripts/check-python.sh"))
        .arg(python)
        .output()
        .expect("run scripts/check-python.sh");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// An executable shell script `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn the_venvs_cpython_passes() {
    let (code, err) = check(&venv_python());
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn a_cpython_without_a_shared_libpython_is_refused_with_the_packages_to_install() {
    let dir = tempfile::tempdir().unwrap();
    // sysconfig reads its build variables from the module _PYTHON_SYSCONFIGDATA_NAME names: the real module's,
    // with the library directories moved to an empty one.
    let real = Command::new(venv_python())
        .args(["-c", "import sysconfig; print(sysconfig._get_sysconfigdata_name())"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_string();
    assert!(real.starts_with("_sysconfigdata"), "{real}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(
        dir.path().join("_static_sysconfigdata.py"),
        format!(
            "import importlib\n\
             real = importlib.import_module({real:?}).build_time_vars\n\
             build_time_vars = dict(real, LIBDIR={e:?}, LIBPL={e:?})\n\
             assert build_time_vars['LDVERSION'] == '3.11'\n",
            e = empty.display().to_string()
        ),
    )
    .unwrap();
    // The control: the same wrapper with the library directories left as they are passes.
    std::fs::write(
        dir.path().join("_same_sysconfigdata.py"),
        format!("import importlib\nbuild_time_vars = dict(importlib.import_module({real:?}).build_time_vars)\n"),
    )
    .unwrap();
    let wrapper = |name: &str, module: &str| {
        let body = format!(
            "PYTHONPATH={} _PYTHON_SYSCONFIGDATA_NAME={module} exec {} \"$@\"",
            dir.path().display(),
            venv_python().display()
        );
        script(dir.path(), name, &body)
    };
    let (code, err) = check(&wrapper("python-same", "_same_sysconfigdata"));
    assert_eq!(code, 0, "{err}");
    let (code, err) = check(&wrapper("python3.11", "_static_sysconfigdata"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no shared libpython3.11.so"), "{err}");
    assert!(err.contains("apt-get install python3.11 python3.11-venv libpython3.11-dev"), "{err}");
    assert!(err.contains("PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install"), "{err}");
    assert!(err.contains("make PYTHON="), "{err}");
}

#[test]
fn a_cpython_without_ensurepip_is_refused_with_the_venv_package() {
    let dir = tempfile::tempdir().unwrap();
    // What Debian's python3.11 is without python3.11-venv: no ensurepip to import.
    let shadow = dir.path().join("ensurepip");
    std::fs::create_dir(&shadow).unwrap();
    std::fs::write(shadow.join("__init__.py"), "raise ModuleNotFoundError(\"No module named 'ensurepip'\")\n").unwrap();
    let py = script(
        dir.path(),
        "python3.11",
        &format!("PYTHONPATH={} exec {} \"$@\"", dir.path().display(), venv_python().display()),
    );
    let (code, err) = check(&py);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot make a venv"), "{err}");
    assert!(err.contains("python3.11-venv"), "{err}");
}

#[test]
fn another_python_version_or_none_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An interpreter that answers as CPython 3.12 does to the script's two questions.
    let py312 = script(
        dir.path(),
        "python3",
        "case \"$2\" in *version_info*) echo 3.12;; *implementation*) echo CPython;; *) exit 1;; esac",
    );
    let (code, err) = check(&py312);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is CPython 3.12; microlambda needs CPython 3.11"), "{err}");
    assert!(err.contains("libpython3.11-dev"), "{err}");

    let (code, err) = check(&dir.path().join("no-such-python"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no python3.11"), "{err}");
}
