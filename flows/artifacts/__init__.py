"""What runs show in Prefect's UI beside their logs: the contact sheet, the progress view."""
