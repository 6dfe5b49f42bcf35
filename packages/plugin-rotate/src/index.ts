// placeholder: replaced by the plugin's implementation
export {};
