"""The text HELP shows: one entry per command, its syntax first, then what it is for."""

from __future__ import annotations

_ENTRIES = {
    "admin": ("ADMIN", "Who runs this server and how to reach them."),
    "away": ("AWAY [:<message>]", "Mark yourself away with a message; without one, you are back."),
    "cap": ("CAP LS [302] | CAP REQ :<caps> | CAP LIST | CAP END", "Negotiate IRCv3 capabilities."),
    "help": ("HELP [<command>]", "Help on a command; HELP alone lists them."),
    "info": ("INFO", "About this server software."),
    "invite": ("INVITE <nick> <channel>", "Invite someone into a channel (operators only when +i)."),
    "ison": ("ISON <nick> [<nick>...]", "Which of these nicks are online."),
    "join": ("JOIN <channel>[,<channel>] [<key>[,<key>]] | JOIN 0", "Join channels; JOIN 0 leaves all."),
    "kick": ("KICK <channel> <nick>[,<nick>] [:<reason>]", "Remove someone from a channel (operators)."),
    "kill": ("KILL <nick> :<reason>", "Disconnect a user (server operators)."),
    "links": ("LINKS", "The servers of this network (not listed: WHOIS shows each user's server)."),
    "list": ("LIST [<channel>|<mask>|>n|<n|!mask]", "List channels, by name, mask or user count."),
    "lusers": ("LUSERS", "How many users and channels there are."),
    "mode": (
        "MODE <channel> [+|-]<modes> [params] | MODE <nick> [+|-iw]",
        "Channel modes: b k l i m n s t o v. User modes: i w o.",
    ),
    "monitor": (
        "MONITOR +|- <nick>[,<nick>] | MONITOR C | MONITOR L | MONITOR S",
        "Be told when these nicks come online or go offline (IRCv3 MONITOR): + adds, - removes,",
        "C clears, L lists, S shows who is online now.",
    ),
    "motd": ("MOTD", "The message of the day."),
    "names": ("NAMES [<channel>]", "Who is in a channel."),
    "nick": (
        "NICK <nick>",
        "Change your nick. Nicks are unique across every server of the network.",
        "If two servers gave out one nick while they could not reach Redis, the user",
        "who took it later is renamed Guest<digits> once they reconnect.",
    ),
    "notice": ("NOTICE <target> :<text>", "Like PRIVMSG, but never answered automatically."),
    "oper": ("OPER <name> <password>", "Become a server operator."),
    "part": ("PART <channel>[,<channel>] [:<reason>]", "Leave channels."),
    "ping": ("PING <token>", "The server answers PONG with the token."),
    "privmsg": ("PRIVMSG <target>[,<target>] :<text>", "Send a message to channels or nicks."),
    "quit": ("QUIT [:<reason>]", "Leave the server."),
    "setname": ("SETNAME :<realname>", "Change your real name (IRCv3 setname)."),
    "tagmsg": ("TAGMSG <target>", "Send only message tags (IRCv3 message-tags)."),
    "time": ("TIME", "The server's time."),
    "topic": ("TOPIC <channel> [:<topic>]", "Show or set a channel's topic."),
    "userhost": ("USERHOST <nick> [<nick>...]", "user@host of up to five nicks."),
    "version": ("VERSION", "Server version and supported features."),
    "wallops": ("WALLOPS :<text>", "A message to every user with +w (server operators)."),
    "who": (
        "WHO <channel>|<mask> [%<fields>[,<token>]]",
        "List users with their flags; with %fields (WHOX), only those fields (of tcuihsnfdlaor).",
    ),
    "whois": ("WHOIS <nick>", "All about a user."),
    "whowas": ("WHOWAS <nick> [<count>]", "Who recently used a nick."),
}

HELP_TEXT: dict[str, list[str]] = {name: list(lines) for name, lines in _ENTRIES.items()}
HELP_TEXT["*"] = [
    "chatd commands (HELP <command> for more):",
    *(" ".join(sorted(_ENTRIES)[index : index + 10]).upper() for index in range(0, len(_ENTRIES), 10)),
]
