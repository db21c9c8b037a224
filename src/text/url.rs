//! URLs of crawled pages: their domain, and block or allow lists of domains and URLs that
//! curation SQL filters on (`url_domain`, `url_in_list`).

use std::collections::HashSet;

use url::Url;

/// The host of `url` in lower case without a leading `www.`; `None` when `url` is not an
/// absolute URL with a host (a bare `example.com/page` is read as http).
pub fn domain(url: &str) -> Option<String> {
    let host = parse(url)?.host_str()?.to_string();
    Some(host.strip_prefix("www.").map(str::to_string).unwrap_or(host))
}

/// A block or allow list: one entry a line, `#` starting a comment. An entry with a scheme
/// (`https://example.com/page`) is one URL; any other is a domain and everything under it
/// (`example.com` holds `example.com` and `math.example.com`, `math.example.com` only the
/// latter and its own subdomains).
#[derive(Debug, Default)]
pub struct UrlList {
    domains: HashSet<String>,
    urls: HashSet<String>,
}

impl UrlList {
    /// The list in `text`; the lines that are neither a URL nor a domain, with their numbers.
    pub fn parse(text: &str) -> (UrlList, Vec<(usize, String)>) {
        let mut list = UrlList::default();
        let mut bad = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            if entry.contains("://") {
                match Url::parse(entry) {
                    Ok(url) if url.host_str().is_some() => {
                        list.urls.insert(exact(url));
                    }
                    _ => bad.push((number + 1, line.to_string())),
                }
            } else {
                let name = entry.trim_start_matches("*.").trim_matches('.').to_ascii_lowercase();
                match Url::parse(&format!("http://{name}/")) {
                    Ok(url) if url.host_str() == Some(name.as_str()) => {
                        list.domains.insert(name);
                    }
                    _ => bad.push((number + 1, line.to_string())),
                }
            }
        }
        (list, bad)
    }

    /// Whether `url` is listed: its exact URL, its host or a domain above it. A string that
    /// is no URL is not listed.
    pub fn contains(&self, url: &str) -> bool {
        let Some(url) = parse(url) else { return false };
        let Some(host) = url.host_str() else { return false };
        let mut suffix = host;
        loop {
            if self.domains.contains(suffix) {
                return true;
            }
            match suffix.split_once('.') {
                Some((_, rest)) => suffix = rest,
                None => break,
            }
        }
        self.urls.contains(&exact(url))
    }
}

fn parse(url: &str) -> Option<Url> {
    let url = url.trim();
    match Url::parse(url) {
        Ok(parsed) => Some(parsed),
        Err(url::ParseError::RelativeUrlWithoutBase) => Url::parse(&format!("http://{url}")).ok(),
        Err(_) => None,
    }
}

/// A URL as lists compare it: scheme and host in lower case (the parser does that), no
/// fragment.
fn exact(mut url: Url) -> String {
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_drop_www_and_case() {
        assert_eq!(domain("https://WWW.Example.COM/a?b=1").as_deref(), Some("example.com"));
        assert_eq!(domain("math.stackexchange.com/questions/1").as_deref(), Some("math.stackexchange.com"));
        assert_eq!(domain("mailto:someone@example.com"), None);
        assert_eq!(domain(""), None);
        assert_eq!(domain("not a url at all"), None);
    }

    #[test]
    fn lists_hold_domains_their_subdomains_and_exact_urls() {
        let (list, bad) = UrlList::parse(
            "# spam\nexample.com\n*.ads.net   # every ad host\nMath.Blog.org\nhttps://wiki.org/Page#top\n\nnot a domain\nhttp://\n",
        );
        assert_eq!(bad, vec![(7, "not a domain".to_string()), (8, "http://".to_string())]);
        assert_eq!((list.domains.len(), list.urls.len()), (3, 1));
        for listed in
            ["http://example.com/x", "https://sub.example.com", "tracker.ads.net/p", "https://math.blog.org/post"]
        {
            assert!(list.contains(listed), "{listed}");
        }
        assert!(list.contains("https://wiki.org/Page"), "the fragment does not count");
        for free in [
            "https://notexample.com",
            "https://blog.org",
            "https://wiki.org/Other",
            "https://wiki.org/page",
            "garbage ::",
        ] {
            assert!(!list.contains(free), "{free}");
        }
    }
}
