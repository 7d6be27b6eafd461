//! kubectl against the cluster the test plays kubelet for.

use std::ffi::OsString;

/// kubectl against one cluster (`ZTMESH_TEST_KUBECTL`, else the PATH's).
#[derive(Clone)]
pub struct Kube {
    pub kubeconfig: OsString,
}

impl Kube {
    fn command(&self) -> std::process::Command {
        let kubectl = std::env::var_os("ZTMESH_TEST_KUBECTL").unwrap_or("kubectl".into());
        let mut cmd = std::process::Command::new(kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// kubectl's stdout, or its stderr as the error.
    pub fn try_run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("stdin");
        }
        drop(input);
        let out = child.wait_with_output().expect("kubectl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// As [`Kube::try_run`]; panics with kubectl's stderr.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.try_run(args, stdin)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.run(&all, None)).expect("kubectl JSON")
    }

    /// A key of a ConfigMap (`data`) or Secret (`data`, base64).
    pub fn key(&self, kind: &str, ns: &str, name: &str, key: &str) -> Option<String> {
        let resource = if kind == "Secret" {
            "secret"
        } else {
            "configmap"
        };
        let obj: serde_json::Value = serde_json::from_str(
            &self
                .try_run(&["get", resource, name, "-n", ns, "-o", "json"], None)
                .ok()?,
        )
        .ok()?;
        let value = obj["data"][key].as_str()?;
        if kind == "Secret" {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?;
            String::from_utf8(bytes).ok()
        } else {
            Some(value.to_string())
        }
    }
}
