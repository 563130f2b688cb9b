//! Built-in email templates, in French like the seed, used when a rule names a template
//! that has no Brevo template id mapped. Values are HTML-escaped.

use relance_core::Contact;

pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

pub const BUILT_IN: &[&str] = &["thank_you", "vip_offer"];

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(name: &str, contact: &Contact) -> Option<Rendered> {
    let first = contact.first_name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let hello = match first {
        Some(f) => format!("Bonjour {},", escape(f)),
        None => "Bonjour,".to_owned(),
    };
    let hello_text = first.map(|f| format!("Bonjour {f},")).unwrap_or_else(|| "Bonjour,".into());
    let (subject, body_html, body_text) = match name {
        "thank_you" => (
            "Merci pour votre commande",
            "<p>Toute l'équipe du domaine vous remercie pour votre commande. Nous préparons vos bouteilles avec soin \
             et vous tiendrons informé de leur expédition.</p><p>Au plaisir de vous accueillir au domaine,</p>",
            "Toute l'équipe du domaine vous remercie pour votre commande. Nous préparons vos bouteilles avec soin \
             et vous tiendrons informé de leur expédition.\n\nAu plaisir de vous accueillir au domaine,",
        ),
        "vip_offer" => (
            "Une offre réservée à nos meilleurs clients",
            "<p>Votre fidélité compte beaucoup pour nous. En remerciement, nous vous réservons un accès en avant-première \
             à nos nouvelles cuvées et une remise de 15 % sur votre prochaine commande.</p>\
             <p>Un conseiller vous appellera prochainement pour vous les présenter.</p>",
            "Votre fidélité compte beaucoup pour nous. En remerciement, nous vous réservons un accès en avant-première \
             à nos nouvelles cuvées et une remise de 15 % sur votre prochaine commande.\n\n\
             Un conseiller vous appellera prochainement pour vous les présenter.",
        ),
        _ => return None,
    };
    Some(Rendered {
        subject: subject.to_owned(),
        html: format!(
            "<!doctype html><html lang=\"fr\"><body style=\"font-family:Georgia,serif;color:#2b1d16\">\
             <p>{hello}</p>{body_html}<p>Le domaine</p></body></html>"
        ),
        text: format!("{hello_text}\n\n{body_text}\n\nLe domaine"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_render_and_escape() {
        let c = Contact { first_name: Some("<Anne>".into()), ..Contact::default() };
        let r = render("thank_you", &c).unwrap();
        assert!(r.html.contains("Bonjour &lt;Anne&gt;,"));
        assert!(r.text.starts_with("Bonjour <Anne>,"));
        assert_eq!(
            render("vip_offer", &Contact::default()).unwrap().subject,
            "Une offre réservée à nos meilleurs clients"
        );
        assert!(render("nope", &c).is_none());
    }
}
