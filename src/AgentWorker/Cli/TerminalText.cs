using System.Globalization;
using System.Text;

namespace AgentWorker.Cli;

/// <summary>
/// Text an agent controls (its log lines, findings, errors) as the CLI prints it to an operator's terminal. Characters a
/// terminal would act on become visible escapes: C0 controls and DEL as <c>\x1b</c>, <c>\x07</c>, <c>\x00</c> (CR and
/// newline as <c>\r</c> and <c>\n</c>, so one event stays one line), C1 controls (U+009B is a CSI on some terminals)
/// and bidirectional overrides as <c>\u009b</c>, <c>\u202e</c>. Tab is kept: it moves the cursor and nothing else.
/// Printable text, non-ASCII included (<c>AKIA…</c>), is kept as it is. <c>--raw</c> prints the text unchanged.
/// </summary>
internal static class TerminalText
{
    public static string Escape(string text)
    {
        if (!text.Any(NeedsEscape))
            return text;
        var escaped = new StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            if (!NeedsEscape(c))
                escaped.Append(c);
            else if (c == '\n')
                escaped.Append("\\n");
            else if (c == '\r')
                escaped.Append("\\r");
            else
                escaped.Append(c < '\u0080' ? "\\x" : "\\u").Append(((int)c).ToString(c < '\u0080' ? "x2" : "x4", CultureInfo.InvariantCulture));
        }
        return escaped.ToString();
    }

    private static bool NeedsEscape(char c) =>
        c != '\t' && (char.IsControl(c) || c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069');
}
