//! Comments (entries of the `dev-comments` memo) and attachments, and the attachment feed (ADR 0016).

#[allow(clippy::wildcard_imports)]
use super::*;

impl AlmRepository {
    pub(crate) async fn do_comments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
        let field = comment_field(t.as_str())
            .ok_or_else(|| Error::unsupported("comments", format!("{t} has no comments memo")))?;
        let offset = self.offset().await?;
        let item = self.read(t, id).await?;
        let memo = item
            .field(field)
            .and_then(FieldValue::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(parse_comments(&memo)
            .into_iter()
            .enumerate()
            .map(|(i, (name, login, date, text))| {
                let at = parse_comment_date(&date)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map_or(item.changed_at, |d| d.and_utc() - offset);
                let mut c = Comment::new(
                    format!("dc{}", i + 1),
                    at,
                    text,
                    TextFormat::Plain,
                    Visibility::Public,
                );
                c.author = Some(Person {
                    login: Some(login).filter(|l| !l.is_empty()),
                    display_name: Some(name).filter(|n| !n.is_empty()),
                    ..Person::default()
                });
                c
            })
            .collect())
    }

    pub(crate) async fn do_add_comment(
        &self,
        t: &ItemType,
        id: &ItemId,
        c: &NewComment,
    ) -> Result<Comment> {
        self.capabilities.check_comment(c)?;
        let field = comment_field(t.as_str()).ok_or_else(|| {
            Error::unsupported("add_comment", format!("{t} has no comments memo"))
        })?;
        if c.body.trim().is_empty() {
            return Err(
                Error::invalid_input("comment", "", "a comment needs a body")
                    .with_operation("add_comment"),
            );
        }
        let offset = self.offset().await?;
        let login = match &self.config.auth {
            Some(AlmAuth::Password { user, .. }) => user.clone(),
            Some(AlmAuth::ApiKey { client_id, .. }) => client_id.clone(),
            Some(AlmAuth::Custom(_)) | None => String::new(),
        };
        let name = c
            .author
            .as_ref()
            .and_then(|a| a.display_name.clone())
            .unwrap_or_else(|| login.clone());
        let today = (Utc::now() + offset).format("%Y-%m-%d").to_string();
        let text = match c.format {
            TextFormat::Html => html_text(&c.body).trim().to_owned(),
            _ => c.body.clone(),
        };
        let entry = format!(
            "<div align=\"left\"><font face=\"Arial\"><span style=\"font-size:8pt\"><br /></span></font></div><div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>{SEPARATOR}</b></span></font></div><div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>{} &lt;{}&gt;, {today}:</b></span></font><font face=\"Arial\"><span style=\"font-size:8pt\"> {}</span></font></div>",
            html_escape(&name),
            html_escape(&login),
            html_escape(&text).replace('\n', "<br />")
        );
        let meta = self.meta(t).await?;
        let count = self
            .with_lock("add_comment", t, id, || async {
                let current = self.read(t, id).await?;
                let memo = current
                    .field(field)
                    .and_then(FieldValue::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let updated = match memo.rfind("</body>") {
                    Some(pos) => format!("{}{entry}{}", &memo[..pos], &memo[pos..]),
                    None if memo.trim().is_empty() => {
                        format!("<html><body>{entry}</body></html>")
                    }
                    None => format!("{memo}{entry}"),
                };
                let body = self.encode_fields(
                    t,
                    &meta,
                    &FieldMap::new().with(field, FieldValue::Html(updated)),
                    offset,
                )?;
                let stored = self
                    .put_entity("add_comment", t, id, &body)
                    .await?
                    .fields
                    .get(field)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.into_iter().next())
                    .unwrap_or_default();
                Ok(parse_comments(&stored).len())
            })
            .await?;
        let at = NaiveDate::parse_from_str(&today, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or_else(Utc::now, |d| d.and_utc() - offset);
        let mut comment = Comment::new(
            format!("dc{count}"),
            at,
            text,
            TextFormat::Plain,
            Visibility::Public,
        );
        comment.author = Some(Person {
            login: Some(login),
            display_name: Some(name),
            ..Person::default()
        });
        Ok(comment)
    }

    pub(crate) async fn do_attachments(
        &self,
        t: &ItemType,
        id: &ItemId,
    ) -> Result<Vec<AttachmentMeta>> {
        let offset = self.offset().await?;
        let resp = self
            .call(
                "attachments",
                Method::GET,
                &format!("{}/attachments", self.entity_path(t, id)?),
                &[],
                None,
            )
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        let (rows, _) = parse_collection(self.config.format, &resp.body)?;
        Ok(rows
            .iter()
            .map(|e| attachment_meta(e, t, id.clone(), offset))
            .collect())
    }

    pub(crate) async fn do_attachments_since(
        &self,
        t: &ItemType,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentMeta>> {
        // Attaching a file leaves the entity's `last-modified` alone (the simulator does so;
        // unverified on a server), so `changes` does not show it: the project-level
        // attachments collection does, with each attachment's parent.
        let offset = self.offset().await?;
        let local = (since + offset).format(ALM_TIME).to_string();
        let q = [
            (
                "query",
                format!(
                    "{{parent-type[{}];last-modified[>=\"{local}\"]}}",
                    entity_type(t.as_str())
                ),
            ),
            ("order-by", "{last-modified[ASC];id[ASC]}".to_owned()),
            ("page-size", limit.clamp(1, 2000).to_string()),
            ("start-index", "1".to_owned()),
        ];
        let resp = self
            .call(
                "attachments_since",
                Method::GET,
                &format!("{}/attachments", self.project_path),
                &q,
                None,
            )
            .await?;
        let (rows, _) = parse_collection(self.config.format, &resp.body)?;
        rows.iter()
            .enumerate()
            .map(|(i, e)| {
                let parent = e
                    .fields
                    .get("parent-id")
                    .cloned()
                    .flatten()
                    .and_then(|v| v.into_iter().next())
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        Error::protocol(
                            format!("entities[{i}].parent-id"),
                            "an attachment without its entity",
                        )
                    })?;
                let m = attachment_meta(e, t, ItemId::new(parent), offset);
                if m.created_at.is_none() {
                    return Err(Error::protocol(
                        format!("entities[{i}].last-modified"),
                        "an attachment without a time",
                    ));
                }
                Ok(m)
            })
            .collect::<Result<Vec<_>>>()
    }

    pub(crate) async fn do_download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        let path = format!(
            "{}/attachments/{}",
            self.entity_path(&a.item_type, &a.item_id)?,
            seg(&a.file_name)
        );
        let resp = self
            .client
            .get(&path)
            .header(ACCEPT, "application/octet-stream")
            .operation("download")
            .send()
            .await?;
        Ok(resp.body)
    }

    pub(crate) async fn do_upload(
        &self,
        t: &ItemType,
        id: &ItemId,
        a: &NewAttachment,
    ) -> Result<AttachmentMeta> {
        self.capabilities.check_upload(a)?;
        let path = format!("{}/attachments", self.entity_path(t, id)?);
        let resp = self
            .client
            .post(&path)
            .header(ACCEPT, self.config.format.media())
            .header(HeaderName::from_static("slug"), &a.file_name)
            .body(a.data.clone(), "application/octet-stream")
            .header(CONTENT_TYPE, "application/octet-stream")
            .operation("upload")
            .send()
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        let e = parse_entity(self.config.format, &resp.body)?;
        let one = |f: &str| {
            e.fields
                .get(f)
                .cloned()
                .flatten()
                .and_then(|v| v.into_iter().next())
                .unwrap_or_default()
        };
        let mut m = AttachmentMeta::new(one("id"), t.clone(), id.clone(), one("name"));
        m.size = one("file-size").parse().ok();
        Ok(m)
    }
}

pub(crate) const SEPARATOR: &str = "________________________________________";

/// An `attachment` entity as metadata of an attachment of `id`.
pub(crate) fn attachment_meta(
    e: &Entity,
    t: &ItemType,
    id: ItemId,
    offset: TimeDelta,
) -> AttachmentMeta {
    let one = |f: &str| {
        e.fields
            .get(f)
            .cloned()
            .flatten()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default()
    };
    let mut m = AttachmentMeta::new(one("id"), t.clone(), id, one("name"));
    m.size = one("file-size").parse().ok();
    m.created_at = NaiveDateTime::parse_from_str(&one("last-modified"), ALM_TIME)
        .ok()
        .map(|d| d.and_utc() - offset);
    m
}

pub(crate) fn comment_field(collection: &str) -> Option<&'static str> {
    match collection {
        "defects" => Some("dev-comments"),
        "requirements" => Some("comments"),
        _ => None,
    }
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text of an HTML fragment: tags dropped, `<br>` and block ends as new lines, entities decoded.
pub(crate) fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut tag = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let t = tag.trim().to_ascii_lowercase();
                if t.starts_with("br") || t == "/div" || t == "/p" {
                    out.push('\n');
                }
            }
            c if in_tag => tag.push(c),
            c => out.push(c),
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// The entries of a comments memo: (signature name, login, date, text).
pub(crate) fn parse_comments(memo: &str) -> Vec<(String, String, String, String)> {
    let lower = memo.to_ascii_lowercase();
    let is_html = ["<html", "<body", "<div", "<br", "<p>", "<font", "&lt;"]
        .iter()
        .any(|m| lower.contains(m));
    let text = if is_html {
        html_text(memo)
    } else {
        memo.to_owned()
    };
    let mut out = Vec::new();
    for chunk in text.split(SEPARATOR).skip(1) {
        let chunk = chunk.trim_start_matches(['\n', ' ', '\r']);
        let (sig, body) = match chunk.split_once(':') {
            Some((s, b)) if s.contains('<') && s.contains('>') => (s.trim(), b),
            _ => ("", chunk),
        };
        let (name, rest) = sig.split_once('<').unwrap_or(("", sig));
        let (login, date) = rest.split_once('>').unwrap_or((rest, ""));
        out.push((
            name.trim().to_owned(),
            login.trim().to_owned(),
            date.trim().trim_start_matches(',').trim().to_owned(),
            body.trim().to_owned(),
        ));
    }
    out
}

pub(crate) fn parse_comment_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%m/%d/%Y"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_parsed_from_qc_markup_and_plain_rows() {
        let memo = "<html><body>\n<div align=\"left\"><font face=\"Arial\"><span style=\"font-size:8pt\"><br /></span></font></div>\n<div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>________________________________________</b></span></font></div>\n<div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>Jane Doe &lt;jdoe&gt;, 12/6/2017:</b></span></font>\n<font face=\"Arial\"><span style=\"font-size:8pt\"> comment text<br />second line</span></font></div>\n</body></html>";
        let c = parse_comments(memo);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].0.as_str(), c[0].1.as_str(), c[0].2.as_str()),
            ("Jane Doe", "jdoe", "12/6/2017")
        );
        assert_eq!(c[0].3, "comment text\nsecond line");
        assert_eq!(
            parse_comment_date(&c[0].2),
            NaiveDate::from_ymd_opt(2017, 12, 6)
        );
        let plain = "________________________________________\nName Here <nh>, 2017-06-12:\nfirst\n________________________________________\nOther <o>, 2017-06-13:\nsecond";
        let c = parse_comments(plain);
        assert_eq!(c.len(), 2);
        assert_eq!((c[1].1.as_str(), c[1].3.as_str()), ("o", "second"));
        assert!(parse_comments("<html><body>no comments yet</body></html>").is_empty());
    }
}
