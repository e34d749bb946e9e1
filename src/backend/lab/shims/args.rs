//! A small argv reader for the shims: flags with values (`-n X`, `--namespace=X`), boolean
//! flags, positionals, and the command after `--`. Unknown flags are errors so that an
//! unsupported invocation is reported rather than half-understood.

use super::super::LabError;

#[derive(Debug, Default)]
pub struct Args {
    pub positional: Vec<String>,
    pub values: Vec<(String, String)>,
    pub flags: Vec<String>,
    pub command: Vec<String>,
}

impl Args {
    /// `with_value` and `booleans` list the long and short spellings the caller accepts.
    pub fn parse(argv: &[String], with_value: &[&str], booleans: &[&str]) -> Result<Args, LabError> {
        let mut a = Args::default();
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.command = it.cloned().collect();
                break;
            }
            if arg.starts_with('-') && arg.len() > 1 {
                let (key, inline) = match arg.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (arg.clone(), None),
                };
                if with_value.contains(&key.as_str()) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .cloned()
                            .ok_or_else(|| LabError::Input(format!("flag needs an argument: {key}")))?,
                    };
                    a.values.push((key, v));
                } else if booleans.contains(&key.as_str()) && inline.is_none() {
                    a.flags.push(key);
                } else if key.len() > 2
                    && !key.starts_with("--")
                    && key[1..].chars().all(|c| booleans.contains(&format!("-{c}").as_str()))
                {
                    // Combined short flags: -ti
                    a.flags.extend(key[1..].chars().map(|c| format!("-{c}")));
                } else {
                    return Err(LabError::UnsupportedDetail(format!("flag `{arg}`")));
                }
            } else {
                a.positional.push(arg.clone());
            }
        }
        Ok(a)
    }

    /// Last value of any of `names`.
    pub fn value(&self, names: &[&str]) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, names: &[&str]) -> Vec<&str> {
        self.values.iter().filter(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str()).collect()
    }

    pub fn flag(&self, names: &[&str]) -> bool {
        self.flags.iter().any(|f| names.contains(&f.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn values_flags_and_command() {
        let a =
            Args::parse(&v("-n kube-system exec -ti ds/cilium -- cilium-dbg status"), &["-n"], &["-t", "-i"]).unwrap();
        assert_eq!(a.value(&["-n", "--namespace"]), Some("kube-system"));
        assert!(a.flag(&["-t"]) && a.flag(&["-i"]));
        assert_eq!(a.positional, ["exec", "ds/cilium"]);
        assert_eq!(a.command, ["cilium-dbg", "status"]);
        let b = Args::parse(&v("get nodes -o=wide"), &["-o"], &[]).unwrap();
        assert_eq!(b.value(&["-o"]), Some("wide"));
        assert!(Args::parse(&v("get --watch"), &["-o"], &[]).unwrap_err().is_usage());
    }
}
