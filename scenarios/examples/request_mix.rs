//! Prints the requests `daily-installs` makes for a number of installs drawn from the small
//! corpus, one per line (`json PATH` for a project page asked for as PEP 691 JSON, `get PATH`
//! otherwise), so another client — `wrk` with `scenarios/examples/wrk-mix.lua` — can replay the
//! same mix of pages and files against the same balancer and its CPU per request can be set
//! beside the generator's.
//!
//! `cargo run -p scenarios --example request_mix -- [INSTALLS] [SEED] > mix.txt`

use rand::SeedableRng;
use rand::rngs::StdRng;
use scenarios::corpus::{
    Corpus, CorpusPreset, Ecosystem, pep503_normalize, r_tarball_file_name, wheel_file_name,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let installs: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let seed: u64 = args.next().map_or(Ok(1), |a| a.parse())?;
    let corpus = Corpus::generate(&CorpusPreset::Small.config())?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::new();
    for _ in 0..installs {
        let package = corpus.sample_install(&mut rng);
        let mut closure = corpus.install_closure(package);
        match package.ecosystem {
            Ecosystem::Python => {
                closure.reverse();
                for id in closure {
                    let pkg = &corpus.python()[id.index];
                    let name = pep503_normalize(&pkg.name);
                    out.push_str(&format!("json /pypi/latest/simple/{name}/\n"));
                    let wheel = wheel_file_name(pkg, pkg.latest());
                    out.push_str(&format!("get /pypi/latest/packages/{wheel}\n"));
                }
            }
            Ecosystem::R => {
                out.push_str("get /cran/latest/src/contrib/PACKAGES.rds\n");
                for id in closure {
                    let pkg = &corpus.r()[id.index];
                    let tarball = r_tarball_file_name(pkg, pkg.latest());
                    out.push_str(&format!("get /cran/latest/src/contrib/{tarball}\n"));
                }
            }
        }
    }
    print!("{out}");
    Ok(())
}
