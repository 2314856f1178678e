"""The global default texts of automated messages, in English and Danish.

The data migration loads them into the database, where administrators edit them; the
engine falls back to them if a default row was deleted."""

DEFAULT_MESSAGES = {
    "agent_joined": {
        "en": "{agent_name} has joined the conversation.",
        "da": "{agent_name} er kommet ind i samtalen.",
    },
    "queue_position": {
        "en": "You are number {position} in the queue.",
        "da": "Du er nummer {position} i køen.",
    },
    "average_wait_time": {
        "en": "The average wait time is about {minutes} minutes.",
        "da": "Den gennemsnitlige ventetid er cirka {minutes} minutter.",
    },
    "outside_operating_hours": {
        "en": "We are closed right now. Please come back during our opening hours.",
        "da": "Vi har lukket lige nu. Kom gerne tilbage i vores åbningstid.",
    },
    "offline_persistent": {
        "en": "No agent is available right now. Leave your message; you will get the answer here, "
        "and you can close this window in the meantime.",
        "da": "Ingen medarbejder er ledig lige nu. Skriv din besked; du får svaret her, og du kan lukke vinduet imens.",
    },
    "moved_to_waiting": {
        "en": "The conversation is on hold. Write here whenever you are ready to continue.",
        "da": "Samtalen er sat på pause. Skriv her, når du er klar til at fortsætte.",
    },
    "transferred": {
        "en": "Your conversation has been transferred. Someone will be with you shortly.",
        "da": "Din samtale er blevet overført. Der er snart nogen klar til at hjælpe dig.",
    },
    "ended_by_agent": {
        "en": "{agent_name} has ended the conversation.",
        "da": "{agent_name} har afsluttet samtalen.",
    },
    "ended_by_customer": {
        "en": "The customer has ended the conversation.",
        "da": "Kunden har afsluttet samtalen.",
    },
    "auto_closed": {
        "en": "The conversation was closed after a period of inactivity.",
        "da": "Samtalen blev lukket efter en periode uden aktivitet.",
    },
}
