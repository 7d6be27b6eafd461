//! `ztmesh proxy-init`: the iptables rules of Linkerd's proxy-init, so that
//! an injected pod's traffic goes through its proxy transparently.
//!
//! In the nat table, chain `PROXY_INIT_REDIRECT` (from PREROUTING) sends
//! inbound TCP to the proxy's inbound port, except ignored ports; chain
//! `PROXY_INIT_OUTPUT` (from OUTPUT) sends outbound TCP to the outbound
//! port, except the proxy's own traffic (`-m owner --uid-owner`), loopback,
//! ignored ports and ignored subnets. Applying is idempotent (the chains are
//! rebuilt, the jumps added once) and `--remove` takes everything out.
//! Every flag Linkerd's injector passes is accepted, so its argument list
//! works unchanged.

use anyhow::{Context, bail};
use std::process::Command;

const REDIRECT_CHAIN: &str = "PROXY_INIT_REDIRECT";
const OUTPUT_CHAIN: &str = "PROXY_INIT_OUTPUT";

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The proxy's inbound port, where incoming TCP is redirected.
    #[arg(long, default_value_t = 4143)]
    incoming_proxy_port: u16,
    /// The proxy's outbound port, where the pod's outgoing TCP is redirected.
    #[arg(long, default_value_t = 4140)]
    outgoing_proxy_port: u16,
    /// The uid the proxy runs as; its own connections are not redirected.
    #[arg(long, default_value_t = 2102)]
    proxy_uid: u32,
    /// The gid the proxy runs as (also excluded when given).
    #[arg(long)]
    proxy_gid: Option<u32>,
    /// Inbound ports not redirected (e.g. the proxy's 4190,4191), ranges allowed (a-b).
    #[arg(long, value_delimiter = ',')]
    inbound_ports_to_ignore: Vec<String>,
    /// Outbound destination ports not redirected, ranges allowed (a-b).
    #[arg(long, value_delimiter = ',')]
    outbound_ports_to_ignore: Vec<String>,
    /// Destination networks not redirected.
    #[arg(long, value_delimiter = ',')]
    subnets_to_ignore: Vec<String>,
    /// legacy or nft (chooses the default iptables binaries).
    #[arg(long, default_value = "legacy")]
    iptables_mode: String,
    /// The iptables binary to run (overrides --iptables-mode's choice).
    #[arg(long)]
    firewall_bin_path: Option<String>,
    /// Accepted for compatibility (iptables-save is not used).
    #[arg(long)]
    firewall_save_bin_path: Option<String>,
    /// Also configure ip6tables (`--ipv6=false` turns it off).
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    ipv6: bool,
    /// Accepted for compatibility (use --log).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Accepted for compatibility (the output is plain).
    #[arg(long, default_value = "plain")]
    log_format: String,
    /// Accepted for compatibility (nf_conntrack close-wait timeout).
    #[arg(long)]
    timeout_close_wait_secs: Option<u64>,
    /// Print the rules instead of applying them.
    #[arg(long)]
    dry_run: bool,
    /// Remove the rules and chains this command installs.
    #[arg(long)]
    remove: bool,
}

/// `-t nat` followed by `rest`, as iptables arguments.
fn nat(rest: &[&str]) -> Vec<String> {
    ["-t", "nat"]
        .iter()
        .chain(rest)
        .map(|s| s.to_string())
        .collect()
}

/// The iptables invocations (arguments after the binary) that install the rules.
pub fn rules(args: &Args) -> anyhow::Result<Vec<Vec<String>>> {
    let ports = |list: &[String], what: &str| -> anyhow::Result<Option<String>> {
        let mut out = Vec::new();
        for p in list.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let valid = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
            let ok = match p.split_once('-') {
                Some((a, b)) => valid(a) && valid(b) && a.parse::<u16>()? <= b.parse::<u16>()?,
                None => valid(p),
            };
            if !ok {
                bail!("{what}: {p:?} is not a port or a range a-b");
            }
            out.push(p.replace('-', ":"));
        }
        Ok((!out.is_empty()).then(|| out.join(",")))
    };
    let mut cmds = vec![];
    // Inbound.
    cmds.push(nat(&["-N", REDIRECT_CHAIN]));
    if let Some(list) = ports(&args.inbound_ports_to_ignore, "--inbound-ports-to-ignore")? {
        cmds.push(nat(&[
            "-A",
            REDIRECT_CHAIN,
            "-p",
            "tcp",
            "-m",
            "multiport",
            "--dports",
            &list,
            "-j",
            "RETURN",
        ]));
    }
    let inbound = args.incoming_proxy_port.to_string();
    cmds.push(nat(&[
        "-A",
        REDIRECT_CHAIN,
        "-p",
        "tcp",
        "-j",
        "REDIRECT",
        "--to-port",
        &inbound,
    ]));
    // Outbound.
    cmds.push(nat(&["-N", OUTPUT_CHAIN]));
    let uid = args.proxy_uid.to_string();
    cmds.push(nat(&[
        "-A",
        OUTPUT_CHAIN,
        "-m",
        "owner",
        "--uid-owner",
        &uid,
        "-j",
        "RETURN",
    ]));
    if let Some(gid) = args.proxy_gid {
        cmds.push(nat(&[
            "-A",
            OUTPUT_CHAIN,
            "-m",
            "owner",
            "--gid-owner",
            &gid.to_string(),
            "-j",
            "RETURN",
        ]));
    }
    cmds.push(nat(&["-A", OUTPUT_CHAIN, "-o", "lo", "-j", "RETURN"]));
    if let Some(list) = ports(&args.outbound_ports_to_ignore, "--outbound-ports-to-ignore")? {
        cmds.push(nat(&[
            "-A",
            OUTPUT_CHAIN,
            "-p",
            "tcp",
            "-m",
            "multiport",
            "--dports",
            &list,
            "-j",
            "RETURN",
        ]));
    }
    for net in args
        .subnets_to_ignore
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        net.parse::<ipnet::IpNet>()
            .with_context(|| format!("--subnets-to-ignore: {net:?} is not a CIDR"))?;
        cmds.push(nat(&["-A", OUTPUT_CHAIN, "-d", net, "-j", "RETURN"]));
    }
    let outbound = args.outgoing_proxy_port.to_string();
    cmds.push(nat(&[
        "-A",
        OUTPUT_CHAIN,
        "-p",
        "tcp",
        "-j",
        "REDIRECT",
        "--to-port",
        &outbound,
    ]));
    Ok(cmds)
}

fn binaries(args: &Args) -> anyhow::Result<Vec<String>> {
    let v4 = match (&args.firewall_bin_path, args.iptables_mode.as_str()) {
        (Some(bin), _) => bin.clone(),
        (None, "legacy") => "iptables-legacy".into(),
        (None, "nft") => "iptables-nft".into(),
        (None, other) => bail!("--iptables-mode {other:?} is not legacy or nft"),
    };
    let mut bins = vec![v4.clone()];
    if args.ipv6 {
        bins.push(v4.replacen("iptables", "ip6tables", 1));
    }
    Ok(bins)
}

fn iptables(bin: &str, args: &[String]) -> anyhow::Result<std::process::Output> {
    Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("running {bin} (is iptables installed? apt-get install iptables)"))
}

fn remove_with(bin: &str) -> anyhow::Result<()> {
    // Jumps first (repeat until none is left), then the chains.
    for (parent, chain) in [("PREROUTING", REDIRECT_CHAIN), ("OUTPUT", OUTPUT_CHAIN)] {
        while iptables(bin, &nat(&["-D", parent, "-j", chain]))?
            .status
            .success()
        {}
        let _ = iptables(bin, &nat(&["-F", chain]))?;
        let _ = iptables(bin, &nat(&["-X", chain]))?;
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = (
        &args.log_level,
        &args.log_format,
        &args.timeout_close_wait_secs,
        &args.firewall_save_bin_path,
    );
    let cmds = rules(&args)?;
    if args.dry_run {
        for c in &cmds {
            println!("iptables {}", c.join(" "));
        }
        println!("iptables -t nat -A PREROUTING -j {REDIRECT_CHAIN}");
        println!("iptables -t nat -A OUTPUT -j {OUTPUT_CHAIN}");
        return Ok(());
    }
    for bin in binaries(&args)? {
        remove_with(&bin)?;
        if args.remove {
            println!("{bin}: removed {REDIRECT_CHAIN} and {OUTPUT_CHAIN}");
            continue;
        }
        for c in &cmds {
            // ip6tables cannot take IPv4 subnets (and vice versa).
            if let Some(pos) = c.iter().position(|a| a == "-d") {
                let v6_rule = c[pos + 1].contains(':');
                if v6_rule != bin.contains("ip6tables") {
                    continue;
                }
            }
            let out = iptables(&bin, c)?;
            if !out.status.success() {
                bail!(
                    "{bin} {}: {}",
                    c.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        for (parent, chain) in [("PREROUTING", REDIRECT_CHAIN), ("OUTPUT", OUTPUT_CHAIN)] {
            let jump = nat(&["-A", parent, "-j", chain]);
            let out = iptables(&bin, &jump)?;
            if !out.status.success() {
                bail!(
                    "{bin} {}: {}",
                    jump.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        println!(
            "{bin}: inbound TCP -> :{}, outbound TCP -> :{} (uid {} excluded)",
            args.incoming_proxy_port, args.outgoing_proxy_port, args.proxy_uid
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("proxy-init").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn linkerds_injector_arguments_parse_and_make_its_rules() {
        // The argument list Linkerd's chart renders, unchanged.
        let args = parse(&[
            "--firewall-bin-path",
            "iptables-nft",
            "--firewall-save-bin-path",
            "iptables-nft-save",
            "--ipv6=false",
            "--incoming-proxy-port",
            "4143",
            "--outgoing-proxy-port",
            "4140",
            "--proxy-uid",
            "2102",
            "--proxy-gid",
            "2102",
            "--inbound-ports-to-ignore",
            "4190,4191,4567,4568",
            "--outbound-ports-to-ignore",
            "443,6000-6010",
            "--subnets-to-ignore",
            "10.96.0.0/12",
            "--timeout-close-wait-secs",
            "30",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ]);
        assert_eq!(binaries(&args).unwrap(), vec!["iptables-nft"]);
        let rules: Vec<String> = rules(&args).unwrap().iter().map(|r| r.join(" ")).collect();
        assert_eq!(
            rules,
            vec![
                "-t nat -N PROXY_INIT_REDIRECT",
                "-t nat -A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190,4191,4567,4568 -j RETURN",
                "-t nat -A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-port 4143",
                "-t nat -N PROXY_INIT_OUTPUT",
                "-t nat -A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -j RETURN",
                "-t nat -A PROXY_INIT_OUTPUT -m owner --gid-owner 2102 -j RETURN",
                "-t nat -A PROXY_INIT_OUTPUT -o lo -j RETURN",
                "-t nat -A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 443,6000:6010 -j RETURN",
                "-t nat -A PROXY_INIT_OUTPUT -d 10.96.0.0/12 -j RETURN",
                "-t nat -A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-port 4140",
            ]
        );
        assert_eq!(
            binaries(&parse(&["--iptables-mode", "legacy"])).unwrap(),
            vec!["iptables-legacy", "ip6tables-legacy"]
        );
        assert!(binaries(&parse(&["--iptables-mode", "bpf"])).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = rules(&parse(&["--inbound-ports-to-ignore", "4190,http"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("--inbound-ports-to-ignore: \"http\""),
            "{err}"
        );
        let err = rules(&parse(&["--outbound-ports-to-ignore", "9-3"])).unwrap_err();
        assert!(err.to_string().contains("range"), "{err}");
        let err = rules(&parse(&["--subnets-to-ignore", "10.0.0.0/40"])).unwrap_err();
        assert!(
            format!("{err:#}").contains("--subnets-to-ignore"),
            "{err:#}"
        );
    }
}
